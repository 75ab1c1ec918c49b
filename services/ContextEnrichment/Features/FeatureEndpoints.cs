using System.Text.RegularExpressions;

namespace Platform.ContextEnrichment.Features;

/// <summary>Body of <c>PUT /api/features/{featureSet}/{entityKey}</c>.</summary>
public sealed record PutFeaturesRequest(float[]? Values);

/// <summary>Answer of <c>GET /api/entities/{entityKey}/features?sets=...</c>.</summary>
/// <param name="EntityKey">The entity.</param>
/// <param name="Features">Vectors found, in the order the sets were asked for.</param>
/// <param name="Missing">Sets the entity has no vector in.</param>
public sealed record EntityFeatures(string EntityKey, IReadOnlyList<FeatureVector> Features, IReadOnlyList<string> Missing);

/// <summary>HTTP surface of the feature store.</summary>
public static partial class FeatureEndpoints
{
    /// <summary>Most features a vector may hold.</summary>
    public const int MaxValues = 65_536;

    /// <summary>Most feature sets one <c>GET /api/entities/{entityKey}/features</c> may ask for.</summary>
    public const int MaxSetsPerLookup = 64;

    /// <summary>
    /// Maps <c>PUT</c>/<c>GET /api/features/{featureSet}/{entityKey}</c> and the multi-set lookup
    /// <c>GET /api/entities/{entityKey}/features?sets=a,b</c> (what InferenceApi's feature bindings call).
    /// </summary>
    public static IEndpointRouteBuilder MapFeatureEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPut("/api/features/{featureSet}/{entityKey}", async (string featureSet, string entityKey, PutFeaturesRequest? body,
            FeatureStore store, CancellationToken ct) =>
        {
            if (ValidateNames(featureSet, entityKey) is { } invalid)
            {
                return invalid;
            }

            if (body?.Values is not { Length: > 0 } values)
            {
                return Results.BadRequest(new { error = "'values' is required: a non-empty array of numbers." });
            }

            if (values.Length > MaxValues)
            {
                return Results.BadRequest(new { error = $"'values' has {values.Length} elements; at most {MaxValues} are allowed." });
            }

            var bad = Array.FindIndex(values, v => !float.IsFinite(v));
            if (bad >= 0)
            {
                return Results.BadRequest(new { error = $"'values[{bad}]' is not a finite number." });
            }

            return Results.Ok(await store.PutAsync(featureSet, entityKey, values, ct));
        });

        app.MapGet("/api/features/{featureSet}/{entityKey}", async (string featureSet, string entityKey, FeatureStore store, CancellationToken ct) =>
            ValidateNames(featureSet, entityKey)
            ?? (await store.GetAsync(featureSet, entityKey, ct) is { } vector
                ? Results.Ok(vector)
                : Results.NotFound(new { error = $"No features for entity '{entityKey}' in feature set '{featureSet}'." })));

        app.MapGet("/api/entities/{entityKey}/features", async (string entityKey, string? sets, FeatureStore store, CancellationToken ct) =>
        {
            var names = (sets ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct(StringComparer.Ordinal).ToArray();
            if (names.Length == 0)
            {
                return Results.BadRequest(new { error = "'sets' is required: a comma-separated list of feature set names." });
            }

            if (names.Length > MaxSetsPerLookup)
            {
                return Results.BadRequest(new { error = $"'sets' names {names.Length} feature sets; at most {MaxSetsPerLookup} are allowed per lookup." });
            }

            foreach (var name in names)
            {
                if (ValidateNames(name, entityKey) is { } invalid)
                {
                    return invalid;
                }
            }

            var found = await store.GetManyAsync(entityKey, names, ct);
            return Results.Ok(new EntityFeatures(entityKey, found, [.. names.Where(n => !found.Any(f => f.FeatureSet == n))]));
        });

        return app;
    }

    private static IResult? ValidateNames(string featureSet, string entityKey) =>
        !Name().IsMatch(featureSet)
            ? Results.BadRequest(new { error = $"'featureSet' must be 1-128 characters of letters, digits, '_', '-', '.', ':' (got '{featureSet}')." })
            : !Name().IsMatch(entityKey)
                ? Results.BadRequest(new { error = $"'entityKey' must be 1-128 characters of letters, digits, '_', '-', '.', ':' (got '{entityKey}')." })
                : null;

    [GeneratedRegex("^[A-Za-z0-9_.:-]{1,128}$")]
    private static partial Regex Name();
}
