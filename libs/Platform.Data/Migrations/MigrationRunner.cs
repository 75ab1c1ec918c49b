using Microsoft.Extensions.Logging;
using Npgsql;

namespace Platform.Data.Migrations;

/// <summary>Outcome of a migration run.</summary>
/// <param name="Applied">Versions this run applied (empty when the schema was already current).</param>
/// <param name="CurrentVersion">Highest applied version after the run (0 for none).</param>
public sealed record MigrationResult(IReadOnlyList<int> Applied, int CurrentVersion);

/// <summary>
/// Applies pending migrations in one transaction that holds a transaction-scoped advisory lock, so replicas starting
/// together serialise: the first applies, the others wait, then find nothing to do. A migration therefore must not
/// contain statements that refuse to run in a transaction (CREATE INDEX CONCURRENTLY, VACUUM).
/// </summary>
public sealed partial class MigrationRunner(NpgsqlDataSource dataSource, TimeProvider timeProvider, ILogger<MigrationRunner> logger)
{
    /// <summary>Advisory lock key shared by every Platform migrator ("Platform" in ASCII).</summary>
    public const long AdvisoryLockKey = 0x506C6174666F726D;

    private const string CreateBookkeepingSql = """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer     PRIMARY KEY,
            name       text        NOT NULL,
            checksum   text        NOT NULL,
            applied_at timestamptz NOT NULL
        )
        """;

    /// <summary>Applies every migration of <paramref name="source"/> not yet recorded in <c>schema_migrations</c>.</summary>
    /// <exception cref="MigrationChecksumMismatchException">An applied migration's script changed.</exception>
    /// <exception cref="MigrationException">A script failed; nothing from this run was committed.</exception>
    public async Task<MigrationResult> MigrateAsync(IMigrationSource source, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        var migrations = source.GetMigrations();

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_xact_lock(@key)", connection, transaction))
        {
            // Waiting for another replica's migration is expected; do not let the default 30 s timeout cut it short.
            lockCommand.CommandTimeout = 0;
            lockCommand.Parameters.AddWithValue("key", AdvisoryLockKey);
            await lockCommand.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var create = new NpgsqlCommand(CreateBookkeepingSql, connection, transaction))
        {
            await create.ExecuteNonQueryAsync(cancellationToken);
        }

        var applied = new Dictionary<int, (string Name, string Checksum)>();
        await using (var select = new NpgsqlCommand("SELECT version, name, checksum FROM schema_migrations", connection, transaction))
        await using (var reader = await select.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                applied[reader.GetInt32(0)] = (reader.GetString(1), reader.GetString(2));
            }
        }

        foreach (var migration in migrations)
        {
            if (applied.TryGetValue(migration.Version, out var record) && record.Checksum != migration.Checksum)
            {
                throw new MigrationChecksumMismatchException(migration.Version, migration.Name, record.Checksum, migration.Checksum);
            }
        }

        var appliedNow = new List<int>();
        foreach (var migration in migrations.Where(m => !applied.ContainsKey(m.Version)))
        {
            LogApplying(logger, migration.Version, migration.Name);
            try
            {
                await using (var script = new NpgsqlCommand(migration.Sql, connection, transaction))
                {
                    script.CommandTimeout = 300;
                    await script.ExecuteNonQueryAsync(cancellationToken);
                }

                await using var insert = new NpgsqlCommand(
                    "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (@version, @name, @checksum, @applied_at)",
                    connection,
                    transaction);
                insert.Parameters.AddWithValue("version", migration.Version);
                insert.Parameters.AddWithValue("name", migration.Name);
                insert.Parameters.AddWithValue("checksum", migration.Checksum);
                insert.Parameters.AddWithValue("applied_at", timeProvider.GetUtcNow());
                await insert.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (PostgresException ex)
            {
                throw new MigrationException(
                    $"Migration {migration.Version:D4}_{migration.Name} failed ({ex.SqlState}: {ex.MessageText}); the run was rolled back.", ex);
            }

            appliedNow.Add(migration.Version);
        }

        await transaction.CommitAsync(cancellationToken);

        var current = applied.Keys.Concat(appliedNow).DefaultIfEmpty(0).Max();
        LogDone(logger, appliedNow.Count, current);
        return new MigrationResult(appliedNow, current);
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Applying migration {Version} {MigrationName}")]
    private static partial void LogApplying(ILogger logger, int version, string migrationName);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Schema migrations complete: {AppliedCount} applied, schema at version {SchemaVersion}")]
    private static partial void LogDone(ILogger logger, int appliedCount, int schemaVersion);
}
