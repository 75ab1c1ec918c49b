using System.Data;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;
using Platform.ObjectStore;

namespace Platform.ModelRegistry;

/// <summary>Outcome of <see cref="ModelRegistryStore.RegisterVersionAsync"/>.</summary>
/// <param name="Version">The new version, or the existing one holding identical bytes.</param>
/// <param name="Created">False when identical bytes were already registered for the model.</param>
public sealed record RegisterVersionResult(ModelVersionRecord Version, bool Created);

/// <summary>Outcome of <see cref="ModelRegistryStore.DeleteVersionAsync"/>.</summary>
public enum DeleteVersionOutcome
{
    /// <summary>Row removed; its artefact too when no other version uses the same bytes.</summary>
    Deleted,

    /// <summary>No such version.</summary>
    NotFound,

    /// <summary>Refused: it is the only active version of its model and the delete was not forced.</summary>
    OnlyActiveVersion,
}

/// <summary>Changes to a model's settings; null fields keep their value.</summary>
public sealed record ModelSettingsPatch(int? MaxBatchSize, long? MaxQueueDelayMicros, int? QueueCapacity, bool? CacheEnabled, int? CacheTtlSeconds)
{
    /// <summary>Applies the patch.</summary>
    public ModelSettings ApplyTo(ModelSettings settings) => settings with
    {
        MaxBatchSize = MaxBatchSize ?? settings.MaxBatchSize,
        MaxQueueDelayMicros = MaxQueueDelayMicros ?? settings.MaxQueueDelayMicros,
        QueueCapacity = QueueCapacity ?? settings.QueueCapacity,
        CacheEnabled = CacheEnabled ?? settings.CacheEnabled,
        CacheTtlSeconds = CacheTtlSeconds ?? settings.CacheTtlSeconds,
    };
}

/// <summary>
/// Write side of the registry: rows in PostgreSQL (tables <c>models</c>, <c>model_versions</c>, created by AdminApi's migrations) and
/// artefacts in the object store under <see cref="ModelArtifacts.ObjectKey"/>. Writes take a transaction-scoped
/// advisory lock per SHA-256 so an upload and a delete of the same bytes cannot interleave and orphan or lose the object.
/// </summary>
public sealed partial class ModelRegistryStore(NpgsqlDataSource dataSource, IObjectStore objectStore, ILogger<ModelRegistryStore> logger)
{
    private const string VersionColumns = RegistrySql.VersionColumns;

    private const string SettingsColumns = RegistrySql.SettingsColumns;

    private static readonly JsonSerializerOptions Json = RegistrySql.Json;

    /// <summary>
    /// Registers a validated ONNX file as the model's next version, uploading it to the object store unless those bytes
    /// are stored already. Identical bytes already registered for this model return that version (<c>Created</c> false).
    /// If anything fails, neither a row nor an object nobody references is left behind.
    /// </summary>
    /// <param name="name">Model name (validated by the caller); the model row is created on first upload.</param>
    /// <param name="filePath">Local file holding the bytes whose hash is <paramref name="sha256"/>.</param>
    /// <param name="sha256">Lower-case hex SHA-256 of the file.</param>
    /// <param name="sizeBytes">File size.</param>
    /// <param name="inputs">Input metadata read by ONNX Runtime.</param>
    /// <param name="outputs">Output metadata read by ONNX Runtime.</param>
    /// <param name="activate">Register the version as active straight away.</param>
    /// <param name="cancellationToken">Cancels the registration; nothing is committed.</param>
    public async Task<RegisterVersionResult> RegisterVersionAsync(string name, string filePath, string sha256, long sizeBytes,
        IReadOnlyList<ModelTensorSpec> inputs, IReadOnlyList<ModelTensorSpec> outputs, bool activate, CancellationToken cancellationToken = default)
    {
        var key = ModelArtifacts.ObjectKey(sha256);
        var uploaded = false;
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await LockArtifactAsync(connection, transaction, sha256, cancellationToken);

            await using (var ensure = new NpgsqlCommand(
                "INSERT INTO models (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", connection, transaction))
            {
                ensure.Parameters.Add(new NpgsqlParameter { Value = name });
                await ensure.ExecuteNonQueryAsync(cancellationToken);
            }

            // The row lock serialises uploads of one model, so version numbers are dense and the duplicate check is exact.
            long next;
            await using (var lockModel = new NpgsqlCommand("SELECT next_version FROM models WHERE name = $1 FOR UPDATE", connection, transaction))
            {
                lockModel.Parameters.Add(new NpgsqlParameter { Value = name });
                next = (long)(await lockModel.ExecuteScalarAsync(cancellationToken))!;
            }

            await using (var existing = new NpgsqlCommand(
                $"SELECT {VersionColumns} FROM model_versions v WHERE v.model_name = $1 AND v.sha256 = $2", connection, transaction))
            {
                existing.Parameters.Add(new NpgsqlParameter { Value = name });
                existing.Parameters.Add(new NpgsqlParameter { Value = sha256 });
                await using var reader = await existing.ExecuteReaderAsync(cancellationToken);
                if (await reader.ReadAsync(cancellationToken))
                {
                    var found = RegistrySql.ReadVersion(reader);
                    await reader.DisposeAsync();
                    await transaction.CommitAsync(cancellationToken);
                    return new RegisterVersionResult(found, Created: false);
                }
            }

            var stored = await objectStore.HeadAsync(key, cancellationToken);
            if (stored is null || stored.Length != sizeBytes)
            {
                await using var file = new FileStream(filePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
                var put = await objectStore.PutAsync(key, file, sizeBytes, cancellationToken);
                uploaded = true;
                if (!string.Equals(put.Sha256, sha256, StringComparison.Ordinal))
                {
                    throw new InvalidOperationException($"The stored artefact hashes to {put.Sha256}, expected {sha256}; the local file changed during upload.");
                }
            }

            ModelVersionRecord created;
            await using (var insert = new NpgsqlCommand(
                "INSERT INTO model_versions (model_name, version, sha256, size_bytes, inputs, outputs, state) " +
                "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING model_name, version, sha256, size_bytes, inputs::text, outputs::text, state, created_at, updated_at, feature_bindings::text",
                connection, transaction))
            {
                insert.Parameters.Add(new NpgsqlParameter { Value = name });
                insert.Parameters.Add(new NpgsqlParameter { Value = next });
                insert.Parameters.Add(new NpgsqlParameter { Value = sha256 });
                insert.Parameters.Add(new NpgsqlParameter { Value = sizeBytes });
                insert.Parameters.Add(new NpgsqlParameter { Value = JsonSerializer.Serialize(inputs, Json), NpgsqlDbType = NpgsqlDbType.Jsonb });
                insert.Parameters.Add(new NpgsqlParameter { Value = JsonSerializer.Serialize(outputs, Json), NpgsqlDbType = NpgsqlDbType.Jsonb });
                insert.Parameters.Add(new NpgsqlParameter { Value = activate ? ModelVersionStates.Active : ModelVersionStates.Inactive });
                await using var reader = await insert.ExecuteReaderAsync(cancellationToken);
                await reader.ReadAsync(cancellationToken);
                created = RegistrySql.ReadVersion(reader);
            }

            await using (var bump = new NpgsqlCommand("UPDATE models SET next_version = $2 WHERE name = $1", connection, transaction))
            {
                bump.Parameters.Add(new NpgsqlParameter { Value = name });
                bump.Parameters.Add(new NpgsqlParameter { Value = next + 1 });
                await bump.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            return new RegisterVersionResult(created, Created: true);
        }
        catch (Exception ex) when (uploaded)
        {
            // The transaction rolled back; remove the object unless a concurrent registration references it by now.
            LogRegistrationFailed(logger, name, sha256, ex.Message);
            await DeleteArtifactIfUnreferencedAsync(sha256, CancellationToken.None);
            throw;
        }
    }

    /// <summary>Sets a version's state; returns the updated version, or null when it does not exist.</summary>
    public async Task<ModelVersionRecord?> SetStateAsync(string name, long version, string state, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand(
            "UPDATE model_versions v SET state = $3, updated_at = CASE WHEN v.state = $3 THEN v.updated_at ELSE now() END " +
            $"WHERE v.model_name = $1 AND v.version = $2 RETURNING {VersionColumns}");
        command.Parameters.Add(new NpgsqlParameter { Value = name });
        command.Parameters.Add(new NpgsqlParameter { Value = version });
        command.Parameters.Add(new NpgsqlParameter { Value = state });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? RegistrySql.ReadVersion(reader) : null;
    }

    /// <summary>
    /// Deletes a version. The only active version of a model is kept unless <paramref name="force"/> is set, since
    /// deleting it would take the model off the air. The artefact goes too when no version of any model uses those bytes.
    /// </summary>
    public async Task<DeleteVersionOutcome> DeleteVersionAsync(string name, long version, bool force, CancellationToken cancellationToken = default)
    {
        string sha256;
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
        {
            await using (var lockModel = new NpgsqlCommand("SELECT 1 FROM models WHERE name = $1 FOR UPDATE", connection, transaction))
            {
                lockModel.Parameters.Add(new NpgsqlParameter { Value = name });
                await lockModel.ExecuteScalarAsync(cancellationToken);
            }

            var target = await RegistrySql.ReadVersionAsync(connection, transaction, name, version, cancellationToken);
            if (target is null)
            {
                return DeleteVersionOutcome.NotFound;
            }

            if (target.IsActive && !force)
            {
                await using var others = new NpgsqlCommand(
                    "SELECT count(*) FROM model_versions WHERE model_name = $1 AND state = 'active' AND version <> $2", connection, transaction);
                others.Parameters.Add(new NpgsqlParameter { Value = name });
                others.Parameters.Add(new NpgsqlParameter { Value = version });
                if ((long)(await others.ExecuteScalarAsync(cancellationToken))! == 0)
                {
                    return DeleteVersionOutcome.OnlyActiveVersion;
                }
            }

            sha256 = target.Sha256;
            await LockArtifactAsync(connection, transaction, sha256, cancellationToken);
            await using (var delete = new NpgsqlCommand("DELETE FROM model_versions WHERE model_name = $1 AND version = $2", connection, transaction))
            {
                delete.Parameters.Add(new NpgsqlParameter { Value = name });
                delete.Parameters.Add(new NpgsqlParameter { Value = version });
                await delete.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        await DeleteArtifactIfUnreferencedAsync(sha256, cancellationToken);
        return DeleteVersionOutcome.Deleted;
    }

    /// <summary>Applies a settings patch; returns the new settings, or null when the model does not exist.</summary>
    /// <exception cref="ArgumentException">The patched settings are out of range (message names the field).</exception>
    public async Task<ModelSettings?> UpdateSettingsAsync(string name, ModelSettingsPatch patch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(patch);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        ModelSettings current;
        await using (var select = new NpgsqlCommand($"SELECT {SettingsColumns} FROM models m WHERE m.name = $1 FOR UPDATE", connection, transaction))
        {
            select.Parameters.Add(new NpgsqlParameter { Value = name });
            await using var reader = await select.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                return null;
            }
            current = RegistrySql.ReadSettings(reader, 0);
        }

        var updated = patch.ApplyTo(current);
        if (updated.Validate() is { } error)
        {
            throw new ArgumentException(error, nameof(patch));
        }

        await using (var update = new NpgsqlCommand(
            "UPDATE models SET max_batch_size = $2, max_queue_delay_us = $3, queue_capacity = $4, cache_enabled = $5, " +
            "cache_ttl_seconds = $6, updated_at = now() WHERE name = $1", connection, transaction))
        {
            update.Parameters.Add(new NpgsqlParameter { Value = name });
            update.Parameters.Add(new NpgsqlParameter { Value = updated.MaxBatchSize });
            update.Parameters.Add(new NpgsqlParameter { Value = updated.MaxQueueDelayMicros });
            update.Parameters.Add(new NpgsqlParameter { Value = updated.QueueCapacity });
            update.Parameters.Add(new NpgsqlParameter { Value = updated.CacheEnabled });
            update.Parameters.Add(new NpgsqlParameter { Value = updated.CacheTtlSeconds });
            await update.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return updated;
    }

    /// <summary>
    /// Replaces a version's feature bindings (an empty list removes them) after checking them against the version's
    /// inputs with <see cref="FeatureBindingRules.Validate"/>. The version row is locked while it is checked and
    /// written, so concurrent replacements apply one after the other and the last one wins whole.
    /// </summary>
    /// <returns>The updated version; <c>Version</c> null and <c>Error</c> null when the version does not exist.</returns>
    public async Task<FeatureBindingsUpdate> SetFeatureBindingsAsync(string name, long version, IReadOnlyList<FeatureBinding> bindings,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(bindings);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        ModelVersionRecord? current;
        await using (var select = new NpgsqlCommand(
            $"SELECT {VersionColumns} FROM model_versions v WHERE v.model_name = $1 AND v.version = $2 FOR UPDATE", connection, transaction))
        {
            select.Parameters.Add(new NpgsqlParameter { Value = name });
            select.Parameters.Add(new NpgsqlParameter { Value = version });
            await using var reader = await select.ExecuteReaderAsync(cancellationToken);
            current = await reader.ReadAsync(cancellationToken) ? RegistrySql.ReadVersion(reader) : null;
        }

        if (current is null)
        {
            return new FeatureBindingsUpdate(null, null);
        }

        if (FeatureBindingRules.Validate(current, bindings) is { } error)
        {
            return new FeatureBindingsUpdate(null, error);
        }

        ModelVersionRecord updated;
        await using (var update = new NpgsqlCommand(
            $"UPDATE model_versions v SET feature_bindings = $3 WHERE v.model_name = $1 AND v.version = $2 RETURNING {VersionColumns}",
            connection, transaction))
        {
            update.Parameters.Add(new NpgsqlParameter { Value = name });
            update.Parameters.Add(new NpgsqlParameter { Value = version });
            update.Parameters.Add(new NpgsqlParameter { Value = JsonSerializer.Serialize(bindings, Json), NpgsqlDbType = NpgsqlDbType.Jsonb });
            await using var reader = await update.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            updated = RegistrySql.ReadVersion(reader);
        }

        await transaction.CommitAsync(cancellationToken);
        return new FeatureBindingsUpdate(updated, null);
    }

    private async Task DeleteArtifactIfUnreferencedAsync(string sha256, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await LockArtifactAsync(connection, transaction, sha256, cancellationToken);
        await using var count = new NpgsqlCommand("SELECT count(*) FROM model_versions WHERE sha256 = $1", connection, transaction);
        count.Parameters.Add(new NpgsqlParameter { Value = sha256 });
        if ((long)(await count.ExecuteScalarAsync(cancellationToken))! == 0)
        {
            await objectStore.DeleteAsync(ModelArtifacts.ObjectKey(sha256), cancellationToken);
        }
        await transaction.CommitAsync(cancellationToken);
    }

    private static async Task LockArtifactAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sha256, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = "model-artifact:" + sha256 });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Registering {Model} ({Sha256}) failed after its upload; removing the artefact if unreferenced: {Reason}")]
    private static partial void LogRegistrationFailed(ILogger logger, string model, string sha256, string reason);
}
