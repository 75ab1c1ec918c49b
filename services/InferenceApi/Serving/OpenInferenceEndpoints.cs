using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Platform.Inference.Protocol;
using Platform.Inference.Routing;
using Platform.InferenceApi.Tenancy;
using Platform.Tenancy.Enforcement;

namespace Platform.InferenceApi.Serving;

/// <summary>The Open Inference Protocol v2 REST routes, and the queries they share with the gRPC service.</summary>
public static class OpenInferenceEndpoints
{
    /// <summary>Extensions listed by <c>GET /v2</c> and ServerMetadata.</summary>
    public static IReadOnlyList<string> Extensions { get; } = ["binary_tensor_data", "classification", "statistics", "model_repository", "model_configuration"];

    /// <summary>Platform name reported in model metadata (Triton's name for ONNX Runtime models).</summary>
    public const string ModelPlatform = "onnxruntime_onnx";

    /// <summary>Backend name reported in model configurations (Triton's name for its ONNX Runtime backend).</summary>
    public const string ModelBackend = "onnxruntime";

    /// <summary>Server name reported by <c>GET /v2</c> and ServerMetadata.</summary>
    public const string ServerName = "platform-inference-api";

    /// <summary>The service's version.</summary>
    public static string ServerVersion { get; } =
        typeof(OpenInferenceEndpoints).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    /// <summary>Maps <c>/v2/...</c>.</summary>
    public static IEndpointRouteBuilder MapOpenInference(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var v2 = endpoints.MapGroup("/v2");

        v2.MapGet("/", () => Results.Json(new ServerMetadata(ServerName, ServerVersion, Extensions)));
        v2.MapGet("/health/live", () => Results.Json(new LiveResponse(true)));
        v2.MapGet("/health/ready", async (ServedModelCatalog catalog, WorkerClient workers, IHostApplicationLifetime lifetime, CancellationToken ct) =>
        {
            var ready = await IsServerReadyAsync(catalog, workers, lifetime, ct);
            return Results.Json(new ReadyResponse(ready), statusCode: ready ? 200 : 503);
        });

        v2.MapGet("/models/{name}", async (string name, ServedModelCatalog catalog, CancellationToken ct) =>
            Answer(await MetadataAsync(catalog, name, null, ct)));
        v2.MapGet("/models/{name}/versions/{version}", async (string name, string version, ServedModelCatalog catalog, CancellationToken ct) =>
            Answer(await MetadataAsync(catalog, name, version, ct)));
        v2.MapGet("/models/{name}/ready", async (string name, ServedModelCatalog catalog, WorkerClient workers, CancellationToken ct) =>
            ReadyAnswer(name, await IsModelReadyAsync(catalog, workers, name, null, ct)));
        v2.MapGet("/models/{name}/versions/{version}/ready", async (string name, string version, ServedModelCatalog catalog, WorkerClient workers, CancellationToken ct) =>
            ReadyAnswer(name, await IsModelReadyAsync(catalog, workers, name, version, ct)));

        // Triton's model configuration extension: what tools such as perf_analyzer read before they send requests.
        v2.MapGet("/models/{name}/config", async (string name, ServedModelCatalog catalog, CancellationToken ct) =>
            Answer(await ConfigurationAsync(catalog, name, null, ct)));
        v2.MapGet("/models/{name}/versions/{version}/config", async (string name, string version, ServedModelCatalog catalog, CancellationToken ct) =>
            Answer(await ConfigurationAsync(catalog, name, version, ct)));

        // The handler is a singleton taken once here: resolving it per request would create a DI scope per inference.
        var handler = endpoints.ServiceProvider.GetRequiredService<InferenceHandler>();
        v2.MapPost("/models/{name}/infer", (HttpContext context, string name) => handler.HandleAsync(context, name, null));
        v2.MapPost("/models/{name}/versions/{version}/infer", (HttpContext context, string name, string version) =>
            handler.HandleAsync(context, name, version));

        // Triton's statistics extension. (A literal segment wins over {name}: like Triton, a model named "stats" has no
        // metadata route.)
        v2.MapGet("/models/stats", (HttpContext context, ModelStatisticsService statistics, CancellationToken ct) =>
            StatisticsAsync(context, statistics, null, null, ct));
        v2.MapGet("/models/{name}/stats", (HttpContext context, string name, ModelStatisticsService statistics, CancellationToken ct) =>
            StatisticsAsync(context, statistics, name, null, ct));
        v2.MapGet("/models/{name}/versions/{version}/stats", (HttpContext context, string name, string version, ModelStatisticsService statistics, CancellationToken ct) =>
            StatisticsAsync(context, statistics, name, version, ct));

        // Triton's model repository extension (admin key, checked by AdminApi).
        v2.MapPost("/repository/index", RepositoryIndexAsync);
        v2.MapPost("/repository/models/{name}/load", RepositoryLoadAsync);
        v2.MapPost("/repository/models/{name}/unload", RepositoryUnloadAsync);

        // Anything else under /v2 is a path the protocol does not have: say so in the protocol's error shape.
        v2.MapFallback("{**path}", (HttpContext context) => Results.Json(
            new ErrorResponse($"no route {context.Request.Method} {context.Request.Path}; the Open Inference Protocol's routes are under /v2/health, /v2/models and /v2/repository"),
            statusCode: StatusCodes.Status404NotFound));
        return endpoints;
    }

    /// <summary>Ready: not stopping (a stopping replica drains), the registry has been read and model workers are known.</summary>
    public static async Task<bool> IsServerReadyAsync(ServedModelCatalog catalog, WorkerClient workers, IHostApplicationLifetime lifetime, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(workers);
        ArgumentNullException.ThrowIfNull(lifetime);
        return !lifetime.ApplicationStopping.IsCancellationRequested && catalog.Loaded && (await workers.GetReplicasAsync(ct)).Count > 0;
    }

    /// <summary>A model's (or version's) metadata, or 404.</summary>
    public static async Task<(ModelMetadata? Metadata, InferenceFailure? Failure)> MetadataAsync(ServedModelCatalog catalog, string name, string? versionText, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var (model, failure) = await catalog.ResolveAsync(name, versionText, ct);
        if (model is null)
        {
            return (null, failure);
        }

        var versions = string.IsNullOrEmpty(versionText)
            ? catalog.ActiveVersions(name).Select(m => m.Version).Order().Select(v => v.ToString(CultureInfo.InvariantCulture)).ToArray()
            : [model.Version.ToString(CultureInfo.InvariantCulture)];
        return (new ModelMetadata(
            model.Name,
            versions,
            ModelPlatform,
            [.. model.Signature.Inputs.Select(i => new TensorMetadata(i.Name, i.DataType.ToProtocolName(), i.Shape))],
            [.. model.Signature.Outputs.Select(o => new TensorMetadata(o.Name, o.DataType.ToProtocolName(), o.Shape))]), null);
    }

    /// <summary>
    /// A model's (or version's) configuration in Triton's terms, or 404. Dimension 0 is the batch dimension when it is
    /// dynamic (-1) in every input and output, as the workers batch along it: then <c>max_batch_size</c> is the model's
    /// batch bound and <c>dims</c> leave dimension 0 out, as Triton's configurations do; otherwise <c>max_batch_size</c>
    /// is 0 and <c>dims</c> are the whole shapes.
    /// </summary>
    public static async Task<(ModelConfiguration? Configuration, InferenceFailure? Failure)> ConfigurationAsync(
        ServedModelCatalog catalog, string name, string? versionText, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var (model, failure) = await catalog.ResolveAsync(name, versionText, ct);
        if (model is null)
        {
            return (null, failure);
        }

        var signature = model.Signature;
        var batched = signature.Inputs.Concat(signature.Outputs).All(t => t.Shape is [-1, ..]);
        ConfigurationTensor Tensor(TensorSpec spec) =>
            new(spec.Name, ConfigurationDataType(spec.DataType), batched ? spec.Shape[1..] : spec.Shape);
        var settings = model.Settings;
        return (new ModelConfiguration(
            model.Name,
            ModelPlatform,
            ModelBackend,
            batched ? settings.MaxBatchSize : 0,
            [.. signature.Inputs.Select(Tensor)],
            [.. signature.Outputs.Select(Tensor)],
            batched && settings.MaxBatchSize > 1 ? new ConfigurationDynamicBatching(settings.MaxQueueDelayMicros) : null,
            new ConfigurationTransactionPolicy(Decoupled: false)), null);
    }

    /// <summary>Triton's name for a datatype in model configurations: <c>TYPE_</c> and the protocol's name, BYTES being <c>TYPE_STRING</c>.</summary>
    public static string ConfigurationDataType(DataType type) => type == DataType.Bytes ? "TYPE_STRING" : "TYPE_" + type.ToProtocolName();

    /// <summary>
    /// Active in the registry is not enough: ready means at least one worker replica has the version loaded (the workers'
    /// own per-version state, cached briefly by <see cref="WorkerClient"/>). Without a version, any active version
    /// counts, as unversioned requests fall back to the next active version while the newest one loads.
    /// </summary>
    public static async Task<(bool Ready, InferenceFailure? Failure)> IsModelReadyAsync(ServedModelCatalog catalog, WorkerClient workers, string name, string? versionText, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(workers);
        var (model, failure) = await catalog.ResolveAsync(name, versionText, ct);
        if (model is null)
        {
            return (false, failure);
        }

        IEnumerable<long> candidates = string.IsNullOrEmpty(versionText)
            ? catalog.ActiveVersions(name).Select(m => m.Version).OrderDescending()
            : [model.Version];
        foreach (var version in candidates)
        {
            if (await workers.IsLoadedOnAnyReplicaAsync(model.Name, version, ct))
            {
                return (true, null);
            }
        }

        return (false, null);
    }

    private static async Task<IResult> StatisticsAsync(HttpContext context, ModelStatisticsService statistics, string? name, string? versionText, CancellationToken ct)
    {
        var (version, invalid) = name is null ? (null, null) : ServedModelCatalog.ParseVersion(name, versionText);
        if (invalid is not null)
        {
            return Error(invalid);
        }

        // Enforcement authenticated the caller; for all models, the list is the models its tenant may use.
        var caller = context.Features.Get<TenantContext>();
        var list = await statistics.GetAsync(name, version, model => caller?.Tenant.MayUse(model) ?? false, ct);
        return list is null
            ? Error(new InferenceFailure(404, version is null ? $"unknown model '{name}' (no active version)" : $"model '{name}' has no active version {version}"))
            : Results.Json(list);
    }

    private static async Task<IResult> RepositoryIndexAsync(HttpContext context, ModelRepository repository, CancellationToken ct)
    {
        if (AdminKey(context) is not { } key)
        {
            return AdminKeyRequired(context);
        }

        var readyOnly = false;
        if (context.Request.ContentLength is > 0)
        {
            try
            {
                using var body = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: ct);
                if (body.RootElement.ValueKind == JsonValueKind.Object && body.RootElement.TryGetProperty("ready", out var ready))
                {
                    readyOnly = ready.ValueKind switch
                    {
                        JsonValueKind.True => true,
                        JsonValueKind.False => false,
                        _ => throw new JsonException("'ready' must be true or false"),
                    };
                }
            }
            catch (JsonException ex)
            {
                return Error(new InferenceFailure(400, $"body: {ex.Message}"));
            }
        }

        var (index, failure) = await repository.IndexAsync(key, readyOnly, ct);
        return index is null ? Error(failure!) : Results.Json(index);
    }

    private static async Task<IResult> RepositoryLoadAsync(HttpContext context, string name, ModelRepository repository, CancellationToken ct)
    {
        if (AdminKey(context) is not { } key)
        {
            return AdminKeyRequired(context);
        }

        long? version = null;
        if (context.Request.ContentLength is > 0)
        {
            try
            {
                using var body = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: ct);
                if (body.RootElement.ValueKind == JsonValueKind.Object && body.RootElement.TryGetProperty("parameters", out var parameters)
                    && parameters.ValueKind == JsonValueKind.Object)
                {
                    foreach (var parameter in parameters.EnumerateObject())
                    {
                        if (parameter.Name != "version")
                        {
                            return Error(new InferenceFailure(400,
                                $"parameters.{parameter.Name}: not supported; upload models through AdminApi and load them by name (optionally with parameters.version)"));
                        }

                        version = parameter.Value.ValueKind == JsonValueKind.Number && parameter.Value.TryGetInt64(out var number) && number >= 1 ? number
                            : parameter.Value.ValueKind == JsonValueKind.String && long.TryParse(parameter.Value.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out number) && number >= 1 ? number
                            : throw new JsonException("parameters.version must be a positive integer");
                    }
                }
            }
            catch (JsonException ex)
            {
                return Error(new InferenceFailure(400, $"body: {ex.Message}"));
            }
        }

        var failure = await repository.LoadAsync(key, name, version, ct);
        return failure is null ? Results.Json(new { }) : Error(failure);
    }

    private static async Task<IResult> RepositoryUnloadAsync(HttpContext context, string name, ModelRepository repository, CancellationToken ct)
    {
        if (AdminKey(context) is not { } key)
        {
            return AdminKeyRequired(context);
        }

        var failure = await repository.UnloadAsync(key, name, ct);
        return failure is null ? Results.Json(new { }) : Error(failure);
    }

    private static string? AdminKey(HttpContext context) =>
        InferenceEnforcement.PresentedKey(context.Request.Headers.Authorization.ToString(), context.Request.Headers["x-api-key"].ToString());

    private static IResult AdminKeyRequired(HttpContext context)
    {
        context.Response.Headers.WWWAuthenticate = $"Bearer realm=\"{InferenceEnforcement.Realm}\"";
        return Error(new InferenceFailure(401, "authorization: the model repository needs the admin key ('Authorization: Bearer <admin key>')"));
    }

    private static IResult Answer<T>((T? Value, InferenceFailure? Failure) result) =>
        result.Value is not null ? Results.Json(result.Value) : Error(result.Failure!);

    private static IResult ReadyAnswer(string name, (bool Ready, InferenceFailure? Failure) result) =>
        result.Failure is { } failure
            ? Error(failure)
            : Results.Json(new ModelReadyResponse(name, result.Ready), statusCode: result.Ready ? 200 : StatusCodes.Status503ServiceUnavailable);

    private static IResult Error(InferenceFailure failure) => new ErrorResult(failure);

    /// <summary>Writes a failure the way every REST error is written (JSON body, Retry-After for 429/503).</summary>
    private sealed class ErrorResult(InferenceFailure failure) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext) =>
            InferenceHandler.WriteErrorAsync(httpContext, failure.Status, failure.Message, failure.RetryAfterMs);
    }
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

/// <summary><c>GET /v2/models/{name}/config</c>: the fields of Triton's model configuration that Platform fills.</summary>
/// <param name="Name">Model name.</param>
/// <param name="Platform">Always <see cref="OpenInferenceEndpoints.ModelPlatform"/>.</param>
/// <param name="Backend">Always <see cref="OpenInferenceEndpoints.ModelBackend"/>.</param>
/// <param name="MaxBatchSize">Rows per batch when dimension 0 is the batch dimension, else 0.</param>
/// <param name="Input">Inputs, <c>dims</c> without the batch dimension when <paramref name="MaxBatchSize"/> is above 0.</param>
/// <param name="Output">Outputs, likewise.</param>
/// <param name="DynamicBatching">The workers' batching window; absent when the model is not batched.</param>
/// <param name="ModelTransactionPolicy">One response per request.</param>
public sealed record ModelConfiguration(
    string Name,
    string Platform,
    string Backend,
    int MaxBatchSize,
    IReadOnlyList<ConfigurationTensor> Input,
    IReadOnlyList<ConfigurationTensor> Output,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    ConfigurationDynamicBatching? DynamicBatching,
    ConfigurationTransactionPolicy ModelTransactionPolicy);

/// <summary>An input or output in a model configuration.</summary>
/// <param name="Name">Tensor name.</param>
/// <param name="DataType">Triton's datatype name, e.g. <c>TYPE_FP32</c>.</param>
/// <param name="Dims">Dimensions (-1 = any size).</param>
public sealed record ConfigurationTensor(string Name, string DataType, IReadOnlyList<long> Dims);

/// <summary>A model configuration's <c>dynamic_batching</c>.</summary>
/// <param name="MaxQueueDelayMicroseconds">How long the first request of a batch may wait for others.</param>
public sealed record ConfigurationDynamicBatching(long MaxQueueDelayMicroseconds);

/// <summary>A model configuration's <c>model_transaction_policy</c>.</summary>
/// <param name="Decoupled">Whether a request may get other than one response (never, on Platform).</param>
public sealed record ConfigurationTransactionPolicy(bool Decoupled);

/// <summary>Error body of every 4xx/5xx answer.</summary>
public sealed record ErrorResponse(string Error);
