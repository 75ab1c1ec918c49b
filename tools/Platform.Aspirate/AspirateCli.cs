using System.CommandLine;
using Platform.Aspirate.Kubernetes;
using Platform.Aspirate.Manifest;

namespace Platform.Aspirate;

/// <summary>
/// The command line, with Aspirate's names where Aspirate has the option:
/// <c>generate --manifest aspire-manifest.json --output-path aspirate-output</c>.
/// </summary>
public static class AspirateCli
{
    /// <summary>Runs the command line; returns the exit code (0 done, 1 the manifest or an option cannot be deployed).</summary>
    public static async Task<int> InvokeAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var defaults = new GenerateOptions();
        var manifest = new Option<FileInfo>("--manifest", "--aspire-manifest", "-m")
        {
            Description = "The manifest Aspire's publisher wrote (dotnet run --project AppHost -- --publisher manifest --output-path aspire-manifest.json).",
            Required = true,
        };
        var outputPath = new Option<DirectoryInfo>("--output-path", "-o")
        {
            Description = "Where the kustomize base goes.",
            DefaultValueFactory = _ => new DirectoryInfo("aspirate-output"),
        };
        var ns = Text("--namespace", "Namespace of every object.", defaults.Namespace);
        var registry = Text("--container-registry", "Registry of the images built from projects.", defaults.ContainerRegistry, "-cr");
        var prefix = Text("--container-repository-prefix", "Repository prefix of those images.", defaults.ContainerRepositoryPrefix);
        var tag = Text("--container-image-tag", "Tag of those images (never latest).", defaults.ContainerImageTag, "-ct");
        var pullPolicy = Text("--image-pull-policy", "Always, IfNotPresent or Never.", defaults.ImagePullPolicy);
        var storageSize = Text("--storage-size", "Size of each volume's claim.", defaults.StorageSize);
        var storageClass = new Option<string?>("--storage-class") { Description = "Storage class of the claims (default: the cluster's)." };
        var otlp = Text("--otlp-endpoint", "OTLP collector the services export to.", defaults.OtlpEndpoint);
        var secretStore = Text("--secret-store", "ClusterSecretStore the ExternalSecrets read.", defaults.SecretStore);
        var secretPrefix = Text("--secret-key-prefix", "Prefix of the parameters' keys in that store.", defaults.SecretKeyPrefix);
        var runAsUser = new Option<long>("--run-as-user") { Description = "UID/GID of every pod (>= 10000).", DefaultValueFactory = _ => defaults.RunAsUser };
        var parameters = new Option<string[]>("--parameter", "-p")
        {
            Description = "name=value for a non-secret parameter without a default (repeatable).",
            AllowMultipleArgumentsPerToken = false,
        };

        // Aspirate's switches that mean nothing here: this tool never builds images and never prompts.
        var skipBuild = new Option<bool>("--skip-build") { Description = "Accepted for Aspirate compatibility (images are never built here)." };
        var nonInteractive = new Option<bool>("--non-interactive") { Description = "Accepted for Aspirate compatibility (never prompts)." };

        var generate = new Command("generate", "Write the Kubernetes (kustomize) base for an Aspire manifest.")
        {
            manifest, outputPath, ns, registry, prefix, tag, pullPolicy, storageSize, storageClass, otlp, secretStore, secretPrefix,
            runAsUser, parameters, skipBuild, nonInteractive,
        };
        generate.SetAction(async (result, ct) =>
        {
            try
            {
                var options = new GenerateOptions
                {
                    Namespace = result.GetValue(ns)!,
                    ContainerRegistry = result.GetValue(registry)!,
                    ContainerRepositoryPrefix = result.GetValue(prefix)!,
                    ContainerImageTag = result.GetValue(tag)!,
                    ImagePullPolicy = result.GetValue(pullPolicy)!,
                    StorageSize = result.GetValue(storageSize)!,
                    StorageClass = result.GetValue(storageClass),
                    OtlpEndpoint = result.GetValue(otlp)!,
                    SecretStore = result.GetValue(secretStore)!,
                    SecretKeyPrefix = result.GetValue(secretPrefix)!,
                    RunAsUser = result.GetValue(runAsUser),
                    Parameters = ParseParameters(result.GetValue(parameters) ?? []),
                };
                var path = result.GetValue(manifest)!.FullName;
                var files = KubernetesGenerator.Generate(await AspireManifest.LoadAsync(path, ct).ConfigureAwait(false), options);
                var root = result.GetValue(outputPath)!.FullName;
                await OutputWriter.WriteAsync(root, files, ct).ConfigureAwait(false);
                await output.WriteLineAsync($"Wrote {files.Count} files to {root}").ConfigureAwait(false);
                return 0;
            }
            catch (ManifestException e)
            {
                await error.WriteLineAsync($"error: {e.Message}").ConfigureAwait(false);
                return 1;
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or System.Text.Json.JsonException)
            {
                await error.WriteLineAsync($"error: {e.Message}").ConfigureAwait(false);
                return 1;
            }
        });

        var root = new RootCommand("Aspirate-compatible Kubernetes generator for Aspire 13 manifests.") { generate };
        return await root.Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, cancellationToken)
            .ConfigureAwait(false);
    }

    private static Option<string> Text(string name, string description, string defaultValue, params string[] aliases) =>
        new(name, aliases) { Description = $"{description} Default: {defaultValue}", DefaultValueFactory = _ => defaultValue };

    private static Dictionary<string, string> ParseParameters(IEnumerable<string> values)
    {
        var parsed = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var v in values)
        {
            var eq = v.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new ManifestException($"--parameter '{v}': expected name=value");
            }

            parsed[v[..eq]] = v[(eq + 1)..];
        }

        return parsed;
    }
}
