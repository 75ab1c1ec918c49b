using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;
using Platform.Aspirate;

[assembly: AssemblyFixture(typeof(Platform.Manifests.Tests.PublishFixture))]

namespace Platform.Manifests.Tests;

/// <summary>
/// Runs the two publishing commands of docs/publishing.md once, into a temp directory: Aspire's manifest publisher on the
/// real AppHost (its own process, user secrets pointed into the temp directory so the test sees publishing stores none),
/// then tools/Platform.Aspirate's command line on that manifest; renders every overlay once with kubectl. The tests only
/// read the results.
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

    /// <summary>Where the publishing AppHost's user secrets go (APPDATA): run mode keeps generated secrets there.</summary>
    public string PublishUserSecretsRoot => Path.Combine(WorkDirectory, "appdata");

    /// <summary>
    /// A value the publishing AppHost is given for its secret parameter (<c>Parameters__admin-api-key</c>, as an operator
    /// would): it must reach neither the manifest nor anything generated from it.
    /// </summary>
    public string SecretSentinel { get; } = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(20));

    /// <summary>The same for the internal credential of the worker hop (<c>Parameters__internal-api-key</c>).</summary>
    public string InternalSecretSentinel { get; } = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(20));

    private static string Configuration => typeof(PublishFixture).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .First(a => a.Key == "Configuration").Value!;

    public JsonObject Manifest { get; private set; } = [];

    public string ManifestText { get; private set; } = string.Empty;

    public Rendered Render(string overlay) => _renders[overlay];

    public async ValueTask InitializeAsync()
    {
        Directory.CreateDirectory(PublishUserSecretsRoot);
        var publish = await RunAsync("dotnet",
            ["run", "--no-build", "--configuration", Configuration, "--project", Path.Combine(RepositoryRoot, "AppHost"),
             "--", "--publisher", "manifest", "--output-path", ManifestPath],
            null, RepositoryRoot, new Dictionary<string, string> { ["APPDATA"] = PublishUserSecretsRoot, ["Parameters__admin-api-key"] = SecretSentinel, ["Parameters__internal-api-key"] = InternalSecretSentinel });
        if (publish.ExitCode != 0)
        {
            throw new InvalidOperationException($"The AppHost's manifest publisher failed ({publish.ExitCode}):\n{publish.Stdout}\n{publish.Stderr}");
        }

        using var output = new StringWriter();
        using var error = new StringWriter();
        var generate = await AspirateCli.InvokeAsync(["generate", "--manifest", ManifestPath, "--output-path", GeneratedDirectory],
            output, error, TestContext.Current.CancellationToken);
        if (generate != 0)
        {
            throw new InvalidOperationException($"tools/Platform.Aspirate generate failed ({generate}):\n{output}\n{error}");
        }

        ManifestText = await File.ReadAllTextAsync(ManifestPath);
        Manifest = JsonNode.Parse(ManifestText)!.AsObject();

        var renders = Overlays.Select(async o => (o, await RunAsync("kubectl", ["kustomize", Path.Combine(RepositoryRoot, "manifests", "overlays", o)], null)));
        foreach (var (overlay, result) in await Task.WhenAll(renders))
        {
            _renders[overlay] = new Rendered(overlay, result.ExitCode, result.Stdout, result.Stderr,
                result.ExitCode == 0 ? Yaml.ReadDocuments(result.Stdout) : []);
        }
    }

    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string file, IEnumerable<string> args, string? stdin,
        string? workingDirectory = null, IReadOnlyDictionary<string, string>? environment = null)
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

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[name] = value;
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
