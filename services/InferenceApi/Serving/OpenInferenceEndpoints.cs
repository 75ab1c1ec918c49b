using System.Reflection;
using Platform.Inference.Protocol;
using Platform.Inference.Routing;
using Platform.WorkerDiscovery;

namespace Platform.InferenceApi.Serving;

/// <summary>The Open Inference Protocol v2 REST routes.</summary>
public static class OpenInferenceEndpoints
{
    /// <summary>Extensions listed by <c>GET /v2</c>.</summary>
    public static IReadOnlyList<string> Extensions { get; } = ["binary_tensor_data"];

    /// <summary>Platform name reported in model metadata (Triton's name for ONNX Runtime models).</summary>
    public const string ModelPlatform = "onnxruntime_onnx";

    /// <summary>Maps <c>/v2/...</c>.</summary>
    public static IEndpointRouteBuilder MapOpenInference(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var v2 = endpoints.MapGroup("/v2");
        var serverVersion = typeof(OpenInferenceEndpoints).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

        v2.MapGet("/", () => Results.Json(new ServerMetadata("platform-inference-api", serverVersion, Extensions)));
        v2.MapGet("/health/live", () => Results.Json(new LiveResponse(true)));
        v2.MapGet("/health/ready", (ServedModelCatalog catalog, IWorkerDirectory workers) =>
        {
            var ready = catalog.Loaded && workers.Workers.Count > 0;
            return Results.Json(new ReadyResponse(ready), statusCode: ready ? 200 : 503);
        });

        v2.MapGet("/models/{name}", (string name, ServedModelCatalog catalog, CancellationToken ct) => MetadataAsync(catalog, name, null, ct));
        v2.MapGet("/models/{name}/versions/{version}", (string name, string version, ServedModelCatalog catalog, CancellationToken ct) =>
            MetadataAsync(catalog, name, version, ct));
        v2.MapGet("/models/{name}/ready", (string name, ServedModelCatalog catalog, WorkerClient workers, CancellationToken ct) =>
            ReadyAsync(catalog, workers, name, null, ct));
        v2.MapGet("/models/{name}/versions/{version}/ready", (string name, string version, ServedModelCatalog catalog, WorkerClient workers, CancellationToken ct) =>
            ReadyAsync(catalog, workers, name, version, ct));

        v2.MapPost("/models/{name}/infer", (HttpContext context, string name, InferenceHandler handler) => handler.HandleAsync(context, name, null));
        v2.MapPost("/models/{name}/versions/{version}/infer", (HttpContext context, string name, string version, InferenceHandler handler) =>
            handler.HandleAsync(context, name, version));
        return endpoints;
    }

    private static async Task<IResult> MetadataAsync(ServedModelCatalog catalog, string name, string? versionText, CancellationToken ct)
    {
        var (model, error) = await ResolveAsync(catalog, name, versionText, ct);
        if (model is null)
        {
            return error!;
        }

        var versions = versionText is null
            ? catalog.ActiveVersions(name).Select(m => m.Version).Order().Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray()
            : [model.Version.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        return Results.Json(new ModelMetadata(
            model.Name,
            versions,
            ModelPlatform,
            [.. model.Signature.Inputs.Select(i => new TensorMetadata(i.Name, i.DataType.ToProtocolName(), i.Shape))],
            [.. model.Signature.Outputs.Select(o => new TensorMetadata(o.Name, o.DataType.ToProtocolName(), o.Shape))]));
    }

    /// <summary>
    /// Active in the registry is not enough: ready means at least one worker replica has the version loaded (the workers'
    /// own per-version readiness, cached briefly by <see cref="WorkerClient"/>). Without a version, any active version
    /// counts, as unversioned requests fall back to the next active version while the newest one loads.
    /// </summary>
    private static async Task<IResult> ReadyAsync(ServedModelCatalog catalog, WorkerClient workers, string name, string? versionText, CancellationToken ct)
    {
        var (model, error) = await ResolveAsync(catalog, name, versionText, ct);
        if (model is null)
        {
            return error!;
        }

        IEnumerable<long> candidates = versionText is null
            ? catalog.ActiveVersions(name).Select(m => m.Version).OrderDescending()
            : [model.Version];
        foreach (var version in candidates)
        {
            if (await workers.IsLoadedOnAnyReplicaAsync(model.Name, version, ct))
            {
                return Results.Json(new ModelReadyResponse(model.Name, true));
            }
        }

        return Results.Json(new ModelReadyResponse(model.Name, false), statusCode: StatusCodes.Status503ServiceUnavailable);
    }

    private static async Task<(ServedModel? Model, IResult? Error)> ResolveAsync(ServedModelCatalog catalog, string name, string? versionText, CancellationToken ct)
    {
        long? version = null;
        if (versionText is not null)
        {
            if (!long.TryParse(versionText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var parsed))
            {
                return (null, Error(404, $"model '{name}' has no version '{versionText}'"));
            }

            version = parsed;
        }

        var model = await catalog.FindAsync(name, version, ct);
        if (model is not null)
        {
            return (model, null);
        }

        var message = version is null || catalog.ActiveVersions(name).Count == 0
            ? $"unknown model '{name}' (no active version)"
            : $"model '{name}' has no active version {version}";
        return (null, Error(404, message));
    }

    private static IResult Error(int status, string message) => Results.Json(new ErrorResponse(message), statusCode: status);

}

/// <summary><c>GET /v2</c>.</summary>
public sealed record ServerMetadata(string Name, string Version, IReadOnlyList<string> Extensions);

/// <summary><c>GET /v2/health/live</c>.</summary>
public sealed record LiveResponse(bool Live);

/// <summary><c>GET /v2/health/ready</c>.</summary>
public sealed record ReadyResponse(bool Ready);

/// <summary><c>GET /v2/models/{name}/ready</c>.</summary>
public sealed record ModelReadyResponse(string Name, bool Ready);

/// <summary>An input or output in model metadata.</summary>
public sealed record TensorMetadata(string Name, string Datatype, IReadOnlyList<long> Shape);

/// <summary><c>GET /v2/models/{name}</c>.</summary>
public sealed record ModelMetadata(string Name, IReadOnlyList<string> Versions, string Platform, IReadOnlyList<TensorMetadata> Inputs, IReadOnlyList<TensorMetadata> Outputs);

/// <summary>Error body of every 4xx/5xx answer.</summary>
public sealed record ErrorResponse(string Error);
