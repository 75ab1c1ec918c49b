using System.Text.Json;
using System.Xml.Linq;
using Microsoft.Extensions.Configuration.UserSecrets;

namespace Platform.Manifests.Tests;

/// <summary>No secret value reaches the manifest, the generated or rendered objects, or the repository.</summary>
public sealed class SecretTests(PublishFixture fixture)
{
    [Fact]
    public void Publishing_never_generates_or_reads_a_secret_value()
    {
        // Run mode generates missing secrets into the AppHost's user secrets; the publishing run had its own (APPDATA),
        // which must stay empty: the manifest carries generate rules, never values.
        var written = Directory.EnumerateFiles(fixture.PublishUserSecretsRoot, "*", SearchOption.AllDirectories).ToList();
        Assert.True(written.Count == 0, $"publishing wrote secrets: {string.Join(", ", written)}");
    }

    [Fact]
    public async Task Known_secret_values_appear_nowhere()
    {
        var secrets = KnownSecretValues();
        var haystacks = new List<(string Where, string Text)>
        {
            ("aspire-manifest.json", fixture.ManifestText),
        };
        haystacks.AddRange(Directory.EnumerateFiles(fixture.GeneratedDirectory, "*", SearchOption.AllDirectories).Select(f => ($"generated {f}", File.ReadAllText(f))));
        haystacks.AddRange(PublishFixture.Overlays.Select(o => ($"render of {o}", fixture.Render(o).Text)));
        var (exit, files, _) = await PublishFixture.RunAsync("git", ["ls-files", "-z"], null, fixture.RepositoryRoot);
        Assert.Equal(0, exit);
        foreach (var file in files.Split('\0', StringSplitOptions.RemoveEmptyEntries))
        {
            var path = Path.Combine(fixture.RepositoryRoot, file);
            if (File.Exists(path) && new FileInfo(path).Length < 2_000_000)
            {
                haystacks.Add((file, File.ReadAllText(path)));
            }
        }

        var leaks = from s in secrets from h in haystacks where h.Text.Contains(s.Value, StringComparison.Ordinal) select $"{s.Name} appears in {h.Where}";
        Assert.Empty(leaks);
    }

    [Theory]
    [MemberData(nameof(OverlayTests.Overlays), MemberType = typeof(OverlayTests))]
    public void No_overlay_renders_a_Secret_or_a_literal_credential(string overlay)
    {
        var r = fixture.Render(overlay);
        Assert.Empty(r.OfKind("Secret").Select(Rendered.Id));
        foreach (var o in r.OfKind("ConfigMap"))
        {
            foreach (var (key, value) in o["data"]?.AsObject() ?? [])
            {
                Assert.DoesNotMatch("(?i)password=(?!\\$\\()|secretkey=(?!\\$\\()", (string?)value ?? string.Empty);
                Assert.DoesNotMatch("(?i)password|secret|api-key|token", key);
            }
        }
    }

    // Values this machine generated in run mode (the AppHost's user secrets), plus any passed in through Parameters__* variables.
    private IEnumerable<(string Name, string Value)> KnownSecretValues()
    {
        var found = new List<(string, string)>
        {
            ("the value the publishing AppHost was given for admin-api-key", fixture.SecretSentinel),
            ("the value the publishing AppHost was given for internal-api-key", fixture.InternalSecretSentinel),
        };
        var id = XDocument.Load(Path.Combine(fixture.RepositoryRoot, "AppHost", "Platform.AppHost.csproj")).Descendants("UserSecretsId").Single().Value;
        var store = PathHelper.GetSecretsPathFromSecretsId(id);
        if (File.Exists(store))
        {
            foreach (var (k, v) in JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(File.ReadAllText(store)) ?? [])
            {
                if (k.StartsWith("Parameters:", StringComparison.Ordinal) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: >= 8 } value)
                {
                    found.Add(($"user secret {k}", value));
                }
            }
        }

        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
        {
            if (e.Key is string k && k.StartsWith("Parameters__", StringComparison.Ordinal) && e.Value is string { Length: >= 8 } v)
            {
                found.Add((k, v));
            }
        }

        return found;
    }
}
