using System.Security.Cryptography;
using System.Text;

namespace Platform.Data.Migrations;

/// <summary>One versioned SQL script.</summary>
/// <param name="Version">Positive, unique version; scripts apply in ascending order.</param>
/// <param name="Name">Descriptive name from the file name, e.g. "initial".</param>
/// <param name="Sql">The script text.</param>
public sealed record Migration(int Version, string Name, string Sql)
{
    /// <summary>
    /// Lower-case hex SHA-256 of the script with line endings normalised to LF, so a checkout with CRLF does not look
    /// like an edited migration.
    /// </summary>
    public string Checksum { get; } = ComputeChecksum(Sql);

    private static string ComputeChecksum(string sql)
    {
        var normalized = sql.TrimStart('\uFEFF').Replace("\r\n", "\n", StringComparison.Ordinal);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(normalized)));
    }
}

/// <summary>Where migrations come from.</summary>
public interface IMigrationSource
{
    /// <summary>All migrations, ordered by version, versions unique.</summary>
    IReadOnlyList<Migration> GetMigrations();
}

/// <summary>A schema migration could not be applied; the transaction was rolled back.</summary>
public class MigrationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public MigrationException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}

/// <summary>An already-applied migration's script changed; fix by restoring the script and adding a new migration instead.</summary>
public sealed class MigrationChecksumMismatchException(int version, string name, string appliedChecksum, string currentChecksum)
    : MigrationException(
        $"Migration {version:D4}_{name} was already applied with checksum {appliedChecksum}, but the script now has checksum "
        + $"{currentChecksum}. Applied migrations must not be edited: restore the original script and add a new migration.")
{
    /// <summary>Version of the edited migration.</summary>
    public int Version { get; } = version;
}
