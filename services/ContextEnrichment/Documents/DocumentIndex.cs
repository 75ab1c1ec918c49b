using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using Platform.VectorSearch;

namespace Platform.ContextEnrichment.Documents;

/// <summary>A stored document.</summary>
public sealed record Document(Guid Id, string Collection, string Text, IReadOnlyDictionary<string, string> Metadata, float[] Embedding);

/// <summary>
/// Documents in Postgres (source of truth) and one in-memory <see cref="VectorIndex"/> per collection,
/// loaded at start and kept current on every write through this replica.
/// </summary>
public sealed partial class DocumentIndex(NpgsqlDataSource db, TimeProvider time, ILogger<DocumentIndex> logger) : BackgroundService, IHealthCheck
{
    private readonly ConcurrentDictionary<string, VectorIndex> _indexes = new(StringComparer.Ordinal);
    private volatile bool _loaded;
    private volatile string _status = "loading documents from Postgres";

    /// <summary>Stores a document and indexes it; all documents of a collection share one dimension.</summary>
    /// <exception cref="ArgumentException">The embedding's length differs from the collection's.</exception>
    public async Task StoreAsync(Document document, CancellationToken cancellationToken)
    {
        var index = _indexes.GetOrAdd(document.Collection, _ => new VectorIndex(document.Embedding.Length));
        if (index.Dimensions != document.Embedding.Length)
        {
            throw new ArgumentException(
                $"'embedding' has {document.Embedding.Length} dimensions; collection '{document.Collection}' holds {index.Dimensions}.", "embedding");
        }

        await using (var cmd = db.CreateCommand(
            "INSERT INTO documents (id, collection, body, metadata, embedding, created_at) VALUES ($1, $2, $3, $4::jsonb, $5, $6) " +
            "ON CONFLICT (id) DO UPDATE SET collection = EXCLUDED.collection, body = EXCLUDED.body, metadata = EXCLUDED.metadata, embedding = EXCLUDED.embedding"))
        {
            cmd.Parameters.AddWithValue(document.Id);
            cmd.Parameters.AddWithValue(document.Collection);
            cmd.Parameters.AddWithValue(document.Text);
            cmd.Parameters.AddWithValue(JsonSerializer.Serialize(document.Metadata));
            cmd.Parameters.AddWithValue(document.Embedding);
            cmd.Parameters.AddWithValue(time.GetUtcNow());
            await cmd.ExecuteNonQueryAsync(cancellationToken);
        }

        index.Upsert(document.Id, document.Embedding, document.Metadata);
    }

    /// <summary>Deletes a document; false when it did not exist.</summary>
    public async Task<bool> DeleteAsync(string collection, Guid id, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("DELETE FROM documents WHERE id = $1 AND collection = $2");
        cmd.Parameters.AddWithValue(id);
        cmd.Parameters.AddWithValue(collection);
        var deleted = await cmd.ExecuteNonQueryAsync(cancellationToken) > 0;
        if (_indexes.TryGetValue(collection, out var index))
        {
            index.Remove(id);
        }

        return deleted;
    }

    /// <summary>The collection's dimension, or null when it has no documents yet.</summary>
    public int? DimensionsOf(string collection) => _indexes.TryGetValue(collection, out var index) ? index.Dimensions : null;

    /// <summary>Exact top-k by cosine similarity, with the documents' text.</summary>
    public async Task<IReadOnlyList<(SearchHit Hit, string Text)>> SearchAsync(string collection, float[] query, int k,
        IReadOnlyDictionary<string, string>? filter, CancellationToken cancellationToken)
    {
        if (!_indexes.TryGetValue(collection, out var index))
        {
            return [];
        }

        var hits = index.Search(query, k, filter);
        if (hits.Count == 0)
        {
            return [];
        }

        var texts = new Dictionary<Guid, string>();
        await using var cmd = db.CreateCommand("SELECT id, body FROM documents WHERE id = ANY($1)");
        cmd.Parameters.AddWithValue(hits.Select(h => h.Id).ToArray());
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            texts[reader.GetGuid(0)] = reader.GetString(1);
        }

        return hits.Select(h => (h, texts.GetValueOrDefault(h.Id, string.Empty))).ToList();
    }

    /// <summary>Loads every document at start; retries while AdminApi has not created the tables yet.</summary>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var count = 0;
                await using var cmd = db.CreateCommand("SELECT id, collection, metadata::text, embedding FROM documents");
                await using var reader = await cmd.ExecuteReaderAsync(stoppingToken);
                while (await reader.ReadAsync(stoppingToken))
                {
                    var embedding = reader.GetFieldValue<float[]>(3);
                    var metadata = JsonSerializer.Deserialize<Dictionary<string, string>>(reader.GetString(2)) ?? [];
                    _indexes.GetOrAdd(reader.GetString(1), _ => new VectorIndex(embedding.Length)).Upsert(reader.GetGuid(0), embedding, metadata);
                    count++;
                }

                _loaded = true;
                _status = $"{count} documents in {_indexes.Count} collections";
                LogLoaded(logger, count, _indexes.Count);
                return;
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
            {
                _status = "waiting for the schema (AdminApi migrations)";
            }
            catch (NpgsqlException ex)
            {
                _status = $"waiting for Postgres: {ex.Message}";
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), time, stoppingToken);
        }
    }

    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(_loaded ? HealthCheckResult.Healthy(_status) : HealthCheckResult.Degraded(_status));

    [LoggerMessage(Level = LogLevel.Information, Message = "Loaded {Count} documents into {Collections} collection indexes")]
    private static partial void LogLoaded(ILogger logger, int count, int collections);
}
