using System.Text.Json;
using Npgsql;
using NpgsqlTypes;

namespace Platform.ModelRegistry;

/// <summary>
/// <see cref="IModelRegistryReader"/> over PostgreSQL. Needs only the <see cref="NpgsqlDataSource"/>, so services
/// without object-store access (InferenceApi) can read the registry.
/// </summary>
public sealed class ModelRegistryReader(NpgsqlDataSource dataSource) : IModelRegistryReader
{
    /// <inheritdoc />
    public async Task<IReadOnlyList<ModelRecord>> ListModelsAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await RegistrySql.ReadModelsAsync(connection, null, null, cancellationToken);
    }

    /// <inheritdoc />
    public async Task<ModelRecord?> GetModelAsync(string name, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return (await RegistrySql.ReadModelsAsync(connection, null, name, cancellationToken)).SingleOrDefault();
    }

    /// <inheritdoc />
    public async Task<ModelVersionRecord?> GetVersionAsync(string name, long version, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await RegistrySql.ReadVersionAsync(connection, null, name, version, cancellationToken);
    }

    /// <inheritdoc />
    public async Task<ActiveModelVersion?> GetActiveAsync(string name, long? version = null, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand(
            $"SELECT {RegistrySql.VersionColumns}, {RegistrySql.SettingsColumns} FROM model_versions v JOIN models m ON m.name = v.model_name " +
            "WHERE v.model_name = $1 AND v.state = 'active' AND ($2::bigint IS NULL OR v.version = $2) ORDER BY v.version DESC LIMIT 1");
        command.Parameters.Add(new NpgsqlParameter { Value = name });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)version ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? new ActiveModelVersion(RegistrySql.ReadVersion(reader), RegistrySql.ReadSettings(reader, RegistrySql.SettingsAfterVersion)) : null;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<ActiveModelVersion>> ListActiveAsync(CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand(
            $"SELECT {RegistrySql.VersionColumns}, {RegistrySql.SettingsColumns} FROM model_versions v JOIN models m ON m.name = v.model_name " +
            "WHERE v.state = 'active' ORDER BY v.model_name, v.version");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var result = new List<ActiveModelVersion>();
        while (await reader.ReadAsync(cancellationToken))
        {
            result.Add(new ActiveModelVersion(RegistrySql.ReadVersion(reader), RegistrySql.ReadSettings(reader, RegistrySql.SettingsAfterVersion)));
        }
        return result;
    }
}

/// <summary>Column lists and row mapping shared by the reader and the store.</summary>
internal static class RegistrySql
{
    public const string VersionColumns =
        "v.model_name, v.version, v.sha256, v.size_bytes, v.inputs::text, v.outputs::text, v.state, v.created_at, v.updated_at, v.feature_bindings::text";

    /// <summary>Index of the first <see cref="SettingsColumns"/> column when they follow <see cref="VersionColumns"/>.</summary>
    public const int SettingsAfterVersion = 10;

    public const string SettingsColumns =
        "m.max_batch_size, m.max_queue_delay_us, m.queue_capacity, m.cache_enabled, m.cache_ttl_seconds";

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    internal static async Task<ModelVersionRecord?> ReadVersionAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string name, long version,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            $"SELECT {RegistrySql.VersionColumns} FROM model_versions v WHERE v.model_name = $1 AND v.version = $2", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = name });
        command.Parameters.Add(new NpgsqlParameter { Value = version });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? ReadVersion(reader) : null;
    }

    internal static async Task<IReadOnlyList<ModelRecord>> ReadModelsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string? name,
        CancellationToken cancellationToken)
    {
        var models = new List<(string Name, ModelSettings Settings, DateTimeOffset Created, DateTimeOffset Updated)>();
        await using (var command = new NpgsqlCommand(
            $"SELECT m.name, {RegistrySql.SettingsColumns}, m.created_at, m.updated_at FROM models m WHERE ($1::text IS NULL OR m.name = $1) ORDER BY m.name",
            connection, transaction))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)name ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                models.Add((reader.GetString(0), ReadSettings(reader, 1), reader.GetFieldValue<DateTimeOffset>(6), reader.GetFieldValue<DateTimeOffset>(7)));
            }
        }

        var versions = new Dictionary<string, List<ModelVersionRecord>>(StringComparer.Ordinal);
        await using (var command = new NpgsqlCommand(
            $"SELECT {RegistrySql.VersionColumns} FROM model_versions v WHERE ($1::text IS NULL OR v.model_name = $1) ORDER BY v.model_name, v.version",
            connection, transaction))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)name ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var version = ReadVersion(reader);
                if (!versions.TryGetValue(version.Name, out var list))
                {
                    versions[version.Name] = list = [];
                }
                list.Add(version);
            }
        }

        return [.. models.Select(m => new ModelRecord(m.Name, m.Settings, versions.TryGetValue(m.Name, out var v) ? v : [], m.Created, m.Updated))];
    }

    internal static ModelVersionRecord ReadVersion(NpgsqlDataReader reader) => new(
        reader.GetString(0),
        reader.GetInt64(1),
        reader.GetString(2),
        reader.GetInt64(3),
        JsonSerializer.Deserialize<ModelTensorSpec[]>(reader.GetString(4), Json) ?? [],
        JsonSerializer.Deserialize<ModelTensorSpec[]>(reader.GetString(5), Json) ?? [],
        reader.GetString(6),
        reader.GetFieldValue<DateTimeOffset>(7),
        reader.GetFieldValue<DateTimeOffset>(8))
    {
        FeatureBindings = JsonSerializer.Deserialize<FeatureBinding[]>(reader.GetString(9), Json) ?? [],
    };

    internal static ModelSettings ReadSettings(NpgsqlDataReader reader, int offset) => new()
    {
        MaxBatchSize = reader.GetInt32(offset),
        MaxQueueDelayMicros = reader.GetInt64(offset + 1),
        QueueCapacity = reader.GetInt32(offset + 2),
        CacheEnabled = reader.GetBoolean(offset + 3),
        CacheTtlSeconds = reader.GetInt32(offset + 4),
    };
}
