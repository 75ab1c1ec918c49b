using System.Text;
using YamlDotNet.Serialization;

namespace Platform.Aspirate.Kubernetes;

/// <summary>
/// Renders generated files as YAML and writes them. The text is deterministic (LF, UTF-8 without BOM, object order as
/// generated), so a committed copy can be checked for drift; files it generated before and no longer generates go.
/// </summary>
public static class OutputWriter
{
    /// <summary>First line of every generated file; also how stale generated files are recognised.</summary>
    public const string Header =
        "# Generated from Aspire's manifest by: dotnet run --project tools/Platform.Aspirate -- generate --manifest AppHost/aspire-manifest.json --output-path aspirate-output";

    /// <summary>The files' text: the header, then one YAML document per object.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Render(IReadOnlyList<GeneratedFile> files)
    {
        var serializer = new SerializerBuilder()
            // Kubernetes reads YAML 1.1: "yes", "on" or "5432" as a string must be quoted or it changes type.
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

            return KeyValuePair.Create(f.Path, text.ToString());
        }).ToList();
    }

    /// <summary>Writes <paramref name="files"/> under <paramref name="root"/> and removes generated files no longer generated.</summary>
    public static async Task WriteAsync(string root, IReadOnlyList<GeneratedFile> files, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(root);
        var written = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (relative, text) in Render(files))
        {
            var path = Path.GetFullPath(Path.Combine(root, relative));
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await File.WriteAllTextAsync(path, text, new UTF8Encoding(false), cancellationToken).ConfigureAwait(false);
            written.Add(path);
        }

        foreach (var stale in Directory.EnumerateFiles(root, "*.yaml", SearchOption.AllDirectories)
                     .Select(Path.GetFullPath).Where(f => !written.Contains(f)).ToList())
        {
            string? first;
            using (var reader = new StreamReader(stale))
            {
                first = await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false);
            }

            // Only what a generator wrote (this one, or the AppHost publisher it replaced); hand-written files stay.
            if (first is not null && first.StartsWith("# Generated from ", StringComparison.Ordinal))
            {
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
}
