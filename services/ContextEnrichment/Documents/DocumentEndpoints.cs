using System.Text.RegularExpressions;

namespace Platform.ContextEnrichment.Documents;

/// <summary>Body of <c>POST /api/collections/{collection}/documents</c>.</summary>
public sealed record AddDocumentRequest(Guid? Id, string? Text, Dictionary<string, string>? Metadata, float[]? Embedding);

/// <summary>Body of <c>POST /api/collections/{collection}/search</c>.</summary>
public sealed record SearchRequest(float[]? Embedding, string? Text, int? K, Dictionary<string, string>? Filter);

/// <summary>One search result.</summary>
public sealed record SearchResult(Guid Id, float Score, string Text, IReadOnlyDictionary<string, string> Metadata);

/// <summary>HTTP surface of document context: ingest and exact similarity search.</summary>
public static partial class DocumentEndpoints
{
    /// <summary>Largest k a search may ask for.</summary>
    public const int MaxK = 1000;

    /// <summary>Maps the document routes.</summary>
    public static IEndpointRouteBuilder MapDocumentEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/collections/{collection}/documents", async (string collection, AddDocumentRequest? body, DocumentIndex index,
            WorkerEmbedder embedder, CancellationToken ct) =>
        {
            if (!Name().IsMatch(collection))
            {
                return Results.BadRequest(new { error = $"'collection' must be 1-64 characters of letters, digits, '_', '-' (got '{collection}')." });
            }

            if (body is null || string.IsNullOrWhiteSpace(body.Text))
            {
                return Results.BadRequest(new { error = "'text' is required." });
            }

            float[] embedding;
            if (body.Embedding is { Length: > 0 } given)
            {
                embedding = given;
            }
            else
            {
                try
                {
                    embedding = await embedder.EmbedAsync(body.Text, ct);
                }
                catch (EmbeddingUnavailableException ex)
                {
                    return Results.Json(new { error = ex.Message }, statusCode: StatusCodes.Status503ServiceUnavailable);
                }
            }

            if (ValidateVector(embedding, "embedding", index.DimensionsOf(collection)) is { } invalid)
            {
                return invalid;
            }

            var document = new Document(body.Id ?? Guid.NewGuid(), collection, body.Text, body.Metadata ?? [], embedding);
            await index.StoreAsync(document, ct);
            return Results.Created($"/api/collections/{collection}/documents/{document.Id}", new { id = document.Id, collection });
        });

        app.MapDelete("/api/collections/{collection}/documents/{id:guid}", async (string collection, Guid id, DocumentIndex index, CancellationToken ct) =>
            await index.DeleteAsync(collection, id, ct)
                ? Results.NoContent()
                : Results.NotFound(new { error = $"No document '{id}' in collection '{collection}'." }));

        app.MapPost("/api/collections/{collection}/search", async (string collection, SearchRequest? body, DocumentIndex index,
            WorkerEmbedder embedder, CancellationToken ct) =>
        {
            float[] query;
            if (body?.Embedding is { Length: > 0 } given)
            {
                query = given;
            }
            else if (!string.IsNullOrWhiteSpace(body?.Text))
            {
                try
                {
                    query = await embedder.EmbedAsync(body.Text, ct);
                }
                catch (EmbeddingUnavailableException ex)
                {
                    return Results.Json(new { error = ex.Message }, statusCode: StatusCodes.Status503ServiceUnavailable);
                }
            }
            else
            {
                return Results.BadRequest(new { error = "'embedding' or 'text' is required: the query." });
            }

            var k = body!.K ?? 5;
            if (k is < 1 or > MaxK)
            {
                return Results.BadRequest(new { error = $"'k' must be between 1 and {MaxK} (got {k})." });
            }

            if (ValidateVector(query, "embedding", index.DimensionsOf(collection)) is { } invalid)
            {
                return invalid;
            }

            var hits = await index.SearchAsync(collection, query, k, body.Filter, ct);
            return Results.Ok(new { hits = hits.Select(h => new SearchResult(h.Hit.Id, h.Hit.Score, h.Text, h.Hit.Metadata)) });
        });

        return app;
    }

    private static IResult? ValidateVector(float[] vector, string field, int? dimensions)
    {
        if (dimensions is { } d && vector.Length != d)
        {
            return Results.BadRequest(new { error = $"'{field}' has {vector.Length} dimensions; this collection holds {d}." });
        }

        var bad = Array.FindIndex(vector, v => !float.IsFinite(v));
        if (bad >= 0)
        {
            return Results.BadRequest(new { error = $"'{field}[{bad}]' is not a finite number." });
        }

        return vector.All(v => v == 0f) ? Results.BadRequest(new { error = $"'{field}' must not be all zeros." }) : null;
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex Name();
}
