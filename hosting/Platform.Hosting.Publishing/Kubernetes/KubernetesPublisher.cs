using System.Text;
using YamlDotNet.Serialization;
using Map = System.Collections.Generic.OrderedDictionary<string, object?>;

namespace Platform.Hosting.Publishing.Kubernetes;

/// <summary>
/// <c>--publisher kubernetes --output-path aspirate-output</c>: writes Aspirate's kustomize layout
/// (see <see cref="KubernetesGenerator"/>). Output is deterministic, so a committed copy can be
/// checked for drift; files it generated before and no longer generates are removed.
/// </summary>
public sealed class KubernetesPublisher : IDistributedApplicationPublisher
{
    /// <summary>First line of every generated file; also how stale generated files are recognised.</summary>
    public const string Header =
        "# Generated from the AppHost model by: dotnet run --project AppHost -- --publisher kubernetes --output-path aspirate-output";

    /// <inheritdoc />
    public string Name => "kubernetes";

    /// <inheritdoc />
    public async Task PublishAsync(PublishingContext context, CancellationToken cancellationToken)
    {
        var options = KubernetesPublishingOptions.FromConfiguration(context.Configuration);
        var files = Render(KubernetesGenerator.Generate(context.Resources, context.ExecutionContext, options));
        var root = context.OutputPath;
        Directory.CreateDirectory(root);

        var written = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (relative, text) in files)
        {
            var path = Path.Combine(root, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await File.WriteAllTextAsync(path, text, new UTF8Encoding(false), cancellationToken).ConfigureAwait(false);
            written.Add(Path.GetFullPath(path));
        }

        foreach (var stale in Directory.EnumerateFiles(root, "*.yaml", SearchOption.AllDirectories)
                     .Where(f => !written.Contains(Path.GetFullPath(f))).ToList())
        {
            using var reader = new StreamReader(stale);
            if (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) == Header)
            {
                reader.Close();
                File.Delete(stale);
            }
        }

        foreach (var dir in Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length))
        {
            if (!Directory.EnumerateFileSystemEntries(dir).Any())
            {
                Directory.Delete(dir);
            }
        }
    }

    /// <summary>The files' text: the header, then one YAML document per object.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Render(IReadOnlyList<GeneratedFile> files)
    {
        var serializer = new SerializerBuilder()
            // Kubernetes reads YAML 1.1: "yes" and "on" would become booleans unless quoted.
            .WithQuotingNecessaryStrings(quoteYaml1_1Strings: true)
            .WithIndentedSequences()
            .DisableAliases()
            .Build();
        return files.Select(f =>
        {
            var text = new StringBuilder(Header).Append('\n');
            for (var i = 0; i < f.Documents.Count; i++)
            {
                if (i > 0)
                {
                    text.Append("---\n");
                }

                text.Append(serializer.Serialize(f.Documents[i]).ReplaceLineEndings("\n"));
            }

            return new KeyValuePair<string, string>(f.Path, text.ToString());
        }).ToList();
    }
}
