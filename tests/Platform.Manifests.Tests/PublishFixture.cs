using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;
using Platform.Hosting.Testing;

[assembly: AssemblyFixture(typeof(Platform.Manifests.Tests.PublishFixture))]

namespace Platform.Manifests.Tests;

/// <summary>
/// Publishes the real AppHost once (manifest and Kubernetes, into a temp directory) and renders
/// every overlay once with kubectl; the tests only read the results.
/// </summary>
public sealed class PublishFixture : IAsyncLifetime
{
    public static readonly string[] Overlays = ["dev", "staging", "prod", "prod-cpu"];

    private readonly Dictionary<string, Rendered> _renders = [];

    public string RepositoryRoot { get; } = typeof(PublishFixture).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .First(a => a.Key == "RepositoryRoot").Value!.TrimEnd('/');

    public string WorkDirectory { get; } = Directory.CreateTempSubdirectory("platform-manifests-").FullName;

    public string ManifestPath => Path.Combine(WorkDirectory, "aspire-manifest.json");

    public string GeneratedDirectory => Path.Combine(WorkDirectory, "aspirate-output");

    public string CommittedDirectory => Path.Combine(RepositoryRoot, "aspirate-output");

    public JsonObject Manifest { get; private set; } = [];

    public string ManifestText { get; private set; } = string.Empty;

    /// <summary>State directory of the publishing AppHost runs (publishing must not generate secrets there).</summary>
    public List<string> StateDirectories { get; } = [];

    public Rendered Render(string overlay) => _renders[overlay];

    public async ValueTask InitializeAsync()
    {
        await PublishAsync("manifest", ManifestPath);
        await PublishAsync("kubernetes", GeneratedDirectory);
        ManifestText = await File.ReadAllTextAsync(ManifestPath);
        Manifest = JsonNode.Parse(ManifestText)!.AsObject();

        var renders = Overlays.Select(async o => (o, await RunAsync("kubectl", ["kustomize", Path.Combine(RepositoryRoot, "manifests", "overlays", o)], null)));
        foreach (var (overlay, result) in await Task.WhenAll(renders))
        {
            _renders[overlay] = new Rendered(overlay, result.ExitCode, result.Stdout, result.Stderr,
                result.ExitCode == 0 ? Yaml.ReadDocuments(result.Stdout) : []);
        }
    }

    private async Task PublishAsync(string publisher, string output)
    {
        await using var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Platform_AppHost>(
            ["--publisher", publisher, "--output-path", output], TestContext.Current.CancellationToken);
        StateDirectories.Add(builder.ExecutionContext.StateDirectory);
        await using var app = await builder.BuildAsync(TestContext.Current.CancellationToken);
        await app.RunAsync(TestContext.Current.CancellationToken);
    }

    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string file, IEnumerable<string> args, string? stdin,
        string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
            process.StandardInput.Close();
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout, await stderr);
    }

    public ValueTask DisposeAsync()
    {
        Directory.Delete(WorkDirectory, recursive: true);
        return ValueTask.CompletedTask;
    }
}

/// <summary>One overlay's <c>kubectl kustomize</c> output.</summary>
public sealed record Rendered(string Overlay, int ExitCode, string Text, string Error, List<JsonObject> Objects)
{
    public IEnumerable<JsonObject> OfKind(params string[] kinds) => Objects.Where(o => kinds.Contains((string?)o["kind"]));

    public static string Id(JsonObject o) => $"{o["kind"]}/{o["metadata"]?["name"]}";
}
