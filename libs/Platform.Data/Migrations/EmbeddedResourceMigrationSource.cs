using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;

namespace Platform.Data.Migrations;

/// <summary>
/// Migrations embedded as resources named <c>{prefix}NNNN_name.sql</c>. Give them an explicit LogicalName in the project
/// file so the names do not depend on MSBuild's identifier mangling of folders.
/// </summary>
public sealed partial class EmbeddedResourceMigrationSource(Assembly assembly, string resourcePrefix) : IMigrationSource
{
    /// <inheritdoc />
    public IReadOnlyList<Migration> GetMigrations()
    {
        var migrations = new List<Migration>();
        foreach (var resource in assembly.GetManifestResourceNames())
        {
            if (!resource.StartsWith(resourcePrefix, StringComparison.Ordinal)
                || !resource.EndsWith(".sql", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var fileName = resource[resourcePrefix.Length..];
            var match = FileNamePattern().Match(fileName);
            if (!match.Success)
            {
                throw new MigrationException($"Embedded migration '{resource}' does not follow the NNNN_name.sql naming convention.");
            }

            using var stream = assembly.GetManifestResourceStream(resource)
                ?? throw new MigrationException($"Embedded migration '{resource}' could not be opened.");
            using var reader = new StreamReader(stream);
            migrations.Add(new Migration(
                int.Parse(match.Groups["version"].Value, NumberStyles.None, CultureInfo.InvariantCulture),
                match.Groups["name"].Value,
                reader.ReadToEnd()));
        }

        migrations.Sort((a, b) => a.Version.CompareTo(b.Version));
        for (var i = 1; i < migrations.Count; i++)
        {
            if (migrations[i].Version == migrations[i - 1].Version)
            {
                throw new MigrationException(
                    $"Two migrations share version {migrations[i].Version}: '{migrations[i - 1].Name}' and '{migrations[i].Name}'.");
            }
        }

        return migrations;
    }

    [GeneratedRegex(@"^(?<version>[0-9]{1,9})_(?<name>[A-Za-z0-9_\-]+)\.sql$", RegexOptions.IgnoreCase)]
    private static partial Regex FileNamePattern();
}

/// <summary>Migrations given in code (tests, tools).</summary>
public sealed class InMemoryMigrationSource(params Migration[] migrations) : IMigrationSource
{
    /// <inheritdoc />
    public IReadOnlyList<Migration> GetMigrations() => [.. migrations.OrderBy(m => m.Version)];
}
