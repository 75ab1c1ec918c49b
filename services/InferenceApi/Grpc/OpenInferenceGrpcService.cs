using System.Diagnostics;
using System.Globalization;
using Grpc.Core;
using Platform.Inference.OpenInference;
using Platform.Inference.OpenInference.Grpc;
using Platform.Inference.Protocol;
using Platform.Inference.Routing;
using Platform.InferenceApi.Serving;
using Platform.InferenceApi.Tenancy;
using Platform.Tenancy.Enforcement;
using ModelMetadataMessage = Platform.Inference.OpenInference.Grpc.ModelMetadataResponse;
using ModelReadyResponse = Platform.Inference.OpenInference.Grpc.ModelReadyResponse;
using ServerMetadataResponse = Platform.Inference.OpenInference.Grpc.ServerMetadataResponse;
using ModelStatisticsMessage = Platform.Inference.OpenInference.Grpc.ModelStatistics;

namespace Platform.InferenceApi.Grpc;

/// <summary>
/// The Open Inference Protocol over gRPC (<c>inference.GRPCInferenceService</c>) on InferenceApi's HTTP/2 endpoint.
/// Everything the REST routes do applies, through the same services: the API key from metadata (<c>authorization:
/// Bearer …</c> or <c>x-api-key</c>), rate limits, budgets, one usage record per admitted inference (written before the
/// answer goes out), the response cache, feature enrichment through <c>parameters.entity_id</c>, traces with the GenAI
/// attributes, and Triton's statistics and model repository extensions. Failures map to gRPC status codes with the
/// same messages as REST (<see cref="GrpcFailures"/>); bad input is INVALID_ARGUMENT naming the tensor or field.
/// </summary>
public sealed class OpenInferenceGrpcService(
    InferencePipeline pipeline,
    InferenceEnforcement enforcement,
    ServedModelCatalog catalog,
    WorkerClient workers,
    ModelStatisticsService statistics,
    ModelRepository repository,
    IHostApplicationLifetime lifetime,
    TimeProvider time) : GRPCInferenceService.GRPCInferenceServiceBase
{
    /// <summary>Response header with the Server-Timing phases (as the REST header).</summary>
    public const string ServerTimingHeader = "server-timing";

    /// <summary>Response header telling whether the cache answered: "hit" or "miss" (absent when the cache was not used).</summary>
    public const string CacheHeader = "platform-cache";

    /// <inheritdoc />
    public override Task<ServerLiveResponse> ServerLive(ServerLiveRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerLiveResponse { Live = true });

    /// <inheritdoc />
    public override async Task<ServerReadyResponse> ServerReady(ServerReadyRequest request, ServerCallContext context) =>
        new() { Ready = await OpenInferenceEndpoints.IsServerReadyAsync(catalog, workers, lifetime, context.CancellationToken) };

    /// <inheritdoc />
    public override Task<ServerMetadataResponse> ServerMetadata(ServerMetadataRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerMetadataResponse
        {
            Name = OpenInferenceEndpoints.ServerName,
            Version = OpenInferenceEndpoints.ServerVersion,
            Extensions = { OpenInferenceEndpoints.Extensions },
        });

    /// <inheritdoc />
    public override async Task<ModelReadyResponse> ModelReady(ModelReadyRequest request, ServerCallContext context)
    {
        await AuthenticateAsync(context, Required(request.Name, "name"));
        var (ready, failure) = await OpenInferenceEndpoints.IsModelReadyAsync(catalog, workers, request.Name, request.Version, context.CancellationToken);
        return failure is null ? new ModelReadyResponse { Ready = ready } : throw GrpcFailures.From(failure);
    }

    /// <inheritdoc />
    public override async Task<ModelMetadataMessage> ModelMetadata(ModelMetadataRequest request, ServerCallContext context)
    {
        await AuthenticateAsync(context, Required(request.Name, "name"));
        var (metadata, failure) = await OpenInferenceEndpoints.MetadataAsync(catalog, request.Name, request.Version, context.CancellationToken);
        if (metadata is null)
        {
            throw GrpcFailures.From(failure!);
        }

        var response = new ModelMetadataMessage { Name = metadata.Name, Platform = metadata.Platform, Versions = { metadata.Versions } };
        response.Inputs.AddRange(metadata.Inputs.Select(Tensor));
        response.Outputs.AddRange(metadata.Outputs.Select(Tensor));
        return response;
    }

    /// <inheritdoc />
    public override async Task<ModelConfigResponse> ModelConfig(ModelConfigRequest request, ServerCallContext context)
    {
        await AuthenticateAsync(context, Required(request.Name, "name"));
        var (configuration, failure) = await OpenInferenceEndpoints.ConfigurationAsync(catalog, request.Name, request.Version, context.CancellationToken);
        if (configuration is null)
        {
            throw GrpcFailures.From(failure!);
        }

        var config = new ModelConfig
        {
            Name = configuration.Name,
            Platform = configuration.Platform,
            Backend = configuration.Backend,
            MaxBatchSize = configuration.MaxBatchSize,
            ModelTransactionPolicy = new ModelTransactionPolicy { Decoupled = configuration.ModelTransactionPolicy.Decoupled },
        };
        config.Input.AddRange(configuration.Input.Select(t => new ModelInput { Name = t.Name, DataType = ConfigurationDataType(t.DataType), Dims = { t.Dims } }));
        config.Output.AddRange(configuration.Output.Select(t => new ModelOutput { Name = t.Name, DataType = ConfigurationDataType(t.DataType), Dims = { t.Dims } }));
        if (configuration.DynamicBatching is { } batching)
        {
            config.DynamicBatching = new ModelDynamicBatching { MaxQueueDelayMicroseconds = (ulong)batching.MaxQueueDelayMicroseconds };
        }

        return new ModelConfigResponse { Config = config };
    }

    // The enum's value names in the .proto are Triton's datatype names (TYPE_FP32...), which C# renames.
    private static ModelDataType ConfigurationDataType(string name) =>
        (ModelDataType)(GrpcServiceReflection.Descriptor.FindTypeByName<Google.Protobuf.Reflection.EnumDescriptor>("ModelDataType").FindValueByName(name)?.Number
            ?? throw new InvalidOperationException($"no configuration datatype {name}"));

    /// <inheritdoc />
    public override async Task<ModelInferResponse> ModelInfer(ModelInferRequest request, ServerCallContext context)
    {
        var started = time.GetTimestamp();
        var model = Required(request.ModelName, "model_name");
        var cancellationToken = context.CancellationToken;
        var span = ServerSpan(context);
        var status = 499;
        long? answeredBy = null;
        try
        {
            var caller = await AuthenticateAsync(context, model);
            var authenticated = time.GetTimestamp();
            var usage = new InferenceUsageFeature();
            var timing = new RequestTiming(started) { Read = authenticated };
            var admission = enforcement.AdmitAsync(caller, cancellationToken);
            // Serving may start while the admission is on its way (InferenceApi:OverlapAdmission); the answer waits for it.
            var overlap = !admission.IsCompleted && enforcement.MayServeBeforeAdmission(caller);
            InferenceAnswer? answer = null;
            InferenceFailure? failure = null;
            if (overlap)
            {
                (answer, failure) = await ServeAsync(request, model, usage, timing, caller, started, span, cancellationToken);
            }

            var waitStarted = time.GetTimestamp();
            var refusal = await admission;
            var admitted = time.GetTimestamp();
            // What the admission added to the answer: all of it, or with overlap only the wait after serving was done.
            var admitWait = time.GetElapsedTime(overlap ? waitStarted : authenticated, admitted);
            if (overlap)
            {
                enforcement.Overlapped(refusal is null);
            }

            if (refusal is not null)
            {
                status = refusal.Status;
                if (refusal.Status != 503)
                {
                    // A refused inference is recorded, like over REST (anything served for it is discarded); without the
                    // ledger (503) nothing can be.
                    await RecordAsync(caller, model, new InferenceUsageFeature(), refusal.Status, started, span);
                }

                throw GrpcFailures.From(refusal);
            }

            if (!overlap)
            {
                timing.Read = admitted;
                (answer, failure) = await ServeAsync(request, model, usage, timing, caller, started, span, cancellationToken);
            }

            status = answer is null ? failure!.Status : 200;
            answeredBy = answer?.Model.Version;
            var recordStarted = timing.Encoded = time.GetTimestamp();
            await RecordAsync(caller, model, usage, status, started, span);
            if (answer is null)
            {
                throw GrpcFailures.From(failure!);
            }

            var headers = new Metadata
            {
                {
                    ServerTimingHeader,
                    timing.Format(time, answer.Worker,
                        new EnforcementTiming(time.GetElapsedTime(started, authenticated), admitWait, time.GetElapsedTime(recordStarted)))
                },
            };
            if (answer.CacheHit is { } hit)
            {
                headers.Add(CacheHeader, hit ? "hit" : "miss");
            }

            await context.WriteResponseHeadersAsync(headers);
            return GrpcInferCodec.WriteResponse(new InferResponse(answer.Model.Name, answer.Model.Version.ToString(CultureInfo.InvariantCulture), answer.Request.Id, answer.Outputs));
        }
        catch (RpcException ex) when (status is 200 or 499)
        {
            // Refused before admission (key, model), or the usage record failed: counted as what the client got.
            status = GrpcFailures.HttpStatusOf(ex.StatusCode);
            throw;
        }
        finally
        {
            pipeline.Finished(model, answeredBy, status, started);
        }
    }

    /// <inheritdoc />
    public override async Task<ModelStatisticsResponse> ModelStatistics(ModelStatisticsRequest request, ServerCallContext context)
    {
        var model = request.Name.Length == 0 ? null : request.Name;
        var caller = await AuthenticateAsync(context, model);
        var (version, invalid) = model is null ? (null, null) : ServedModelCatalog.ParseVersion(model, request.Version);
        if (invalid is not null)
        {
            throw GrpcFailures.From(invalid);
        }

        var list = await statistics.GetAsync(model, version, caller.Tenant.MayUse, context.CancellationToken)
            ?? throw GrpcFailures.Create(404, version is null ? $"unknown model '{model}' (no active version)" : $"model '{model}' has no active version {version}");
        var response = new ModelStatisticsResponse();
        response.ModelStats.AddRange(list.ModelStats.Select(ToMessage));
        return response;
    }

    /// <inheritdoc />
    public override async Task<RepositoryIndexResponse> RepositoryIndex(RepositoryIndexRequest request, ServerCallContext context)
    {
        var key = AdminKey(context);
        CheckRepository(request.RepositoryName);
        var (index, failure) = await repository.IndexAsync(key, request.Ready, context.CancellationToken);
        if (index is null)
        {
            throw GrpcFailures.From(failure!);
        }

        var response = new RepositoryIndexResponse();
        response.Models.AddRange(index.Select(e => new RepositoryIndexResponse.Types.ModelIndex { Name = e.Name, Version = e.Version, State = e.State, Reason = e.Reason }));
        return response;
    }

    /// <inheritdoc />
    public override async Task<RepositoryModelLoadResponse> RepositoryModelLoad(RepositoryModelLoadRequest request, ServerCallContext context)
    {
        var key = AdminKey(context);
        CheckRepository(request.RepositoryName);
        var model = Required(request.ModelName, "model_name");
        long? version = null;
        foreach (var (name, value) in request.Parameters)
        {
            if (name != "version")
            {
                throw GrpcFailures.Create(400, $"parameters.{name}: not supported; upload models through AdminApi and load them by name (optionally with parameters.version)");
            }

            version = value.ParameterChoiceCase switch
            {
                ModelRepositoryParameter.ParameterChoiceOneofCase.Int64Param when value.Int64Param >= 1 => value.Int64Param,
                ModelRepositoryParameter.ParameterChoiceOneofCase.StringParam when long.TryParse(value.StringParam, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) && parsed >= 1 => parsed,
                _ => throw GrpcFailures.Create(400, "parameters.version: must be a positive int64_param (or a string_param of digits)"),
            };
        }

        var failure = await repository.LoadAsync(key, model, version, context.CancellationToken);
        return failure is null ? new RepositoryModelLoadResponse() : throw GrpcFailures.From(failure);
    }

    /// <inheritdoc />
    public override async Task<RepositoryModelUnloadResponse> RepositoryModelUnload(RepositoryModelUnloadRequest request, ServerCallContext context)
    {
        var key = AdminKey(context);
        CheckRepository(request.RepositoryName);
        var failure = await repository.UnloadAsync(key, Required(request.ModelName, "model_name"), context.CancellationToken);
        return failure is null ? new RepositoryModelUnloadResponse() : throw GrpcFailures.From(failure);
    }

    private async ValueTask<(InferenceAnswer? Answer, InferenceFailure? Failure)> RunAsync(
        ModelInferRequest request, string model, InferenceUsageFeature usage, RequestTiming timing, CancellationToken cancellationToken)
    {
        var (served, notFound) = await pipeline.ResolveAsync(model, request.ModelVersion, cancellationToken);
        if (served is null)
        {
            return (null, notFound);
        }

        InferRequest decoded;
        try
        {
            decoded = GrpcInferCodec.ReadRequest(request);
        }
        catch (InferenceRequestException ex)
        {
            return (null, new InferenceFailure(400, ex.Message));
        }

        return await pipeline.RunAsync(served, request.ModelVersion.Length > 0, decoded, usage, timing, cancellationToken);
    }

    // Runs the inference; a client that leaves meanwhile still leaves one usage record (status 499).
    private async ValueTask<(InferenceAnswer? Answer, InferenceFailure? Failure)> ServeAsync(ModelInferRequest request, string model, InferenceUsageFeature usage,
        RequestTiming timing, TenantContext caller, long started, Activity? span, CancellationToken cancellationToken)
    {
        try
        {
            return await RunAsync(request, model, usage, timing, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await RecordAsync(caller, model, usage, 499, started, span);
            throw;
        }
    }

    private async ValueTask RecordAsync(TenantContext caller, string model, InferenceUsageFeature usage, int status, long started, Activity? span)
    {
        try
        {
            await enforcement.RecordAsync(caller, model, usage, status, started, span);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The answer exists but its usage record could not be made durable: the client must not get it.
            throw GrpcFailures.Create(503, "the usage record could not be stored; the request was not charged, retry shortly", 1000);
        }
    }

    private async Task<TenantContext> AuthenticateAsync(ServerCallContext context, string? model)
    {
        var key = InferenceEnforcement.PresentedKey(context.RequestHeaders.GetValue("authorization"), context.RequestHeaders.GetValue("x-api-key"));
        var (caller, refusal) = await enforcement.AuthenticateAsync(key, model, context.GetHttpContext().Connection.RemoteIpAddress, ServerSpan(context), context.CancellationToken);
        return refusal is null ? caller! : throw GrpcFailures.From(refusal);
    }

    private static string AdminKey(ServerCallContext context) =>
        InferenceEnforcement.PresentedKey(context.RequestHeaders.GetValue("authorization"), context.RequestHeaders.GetValue("x-api-key"))
        ?? throw GrpcFailures.Create(401, "authorization: the model repository needs the admin key ('authorization: Bearer <admin key>')", challenge: $"Bearer realm=\"{InferenceEnforcement.Realm}\"");

    private static void CheckRepository(string name)
    {
        if (name.Length > 0 && name != "platform")
        {
            throw GrpcFailures.Create(404, $"repository_name: no repository '{name}' (Platform has one, named 'platform'; empty means it)");
        }
    }

    private static string Required(string value, string field) =>
        value.Length > 0 ? value : throw GrpcFailures.Create(400, $"{field}: required");

    // The ASP.NET Core hosting activity of the HTTP/2 request that carries the call.
    private static Activity? ServerSpan(ServerCallContext context) =>
        context.GetHttpContext().Features.Get<Microsoft.AspNetCore.Http.Features.IHttpActivityFeature>()?.Activity ?? Activity.Current;

    private static ModelMetadataMessage.Types.TensorMetadata Tensor(Serving.TensorMetadata tensor) =>
        new() { Name = tensor.Name, Datatype = tensor.Datatype, Shape = { tensor.Shape } };

    private static ModelStatisticsMessage ToMessage(ModelVersionStatistics s)
    {
        var message = new ModelStatisticsMessage
        {
            Name = s.Name,
            Version = s.Version,
            LastInference = s.LastInference,
            InferenceCount = s.InferenceCount,
            ExecutionCount = s.ExecutionCount,
            QueueDepth = s.QueueDepth,
            InferenceStats = new Inference.OpenInference.Grpc.InferStatistics
            {
                Success = Duration(s.InferenceStats.Success),
                Fail = Duration(s.InferenceStats.Fail),
                Queue = Duration(s.InferenceStats.Queue),
                ComputeInput = Duration(s.InferenceStats.ComputeInput),
                ComputeInfer = Duration(s.InferenceStats.ComputeInfer),
                ComputeOutput = Duration(s.InferenceStats.ComputeOutput),
                CacheHit = Duration(s.InferenceStats.CacheHit),
                CacheMiss = Duration(s.InferenceStats.CacheMiss),
            },
        };
        message.BatchStats.AddRange(s.BatchStats.Select(b => new Inference.OpenInference.Grpc.InferBatchStatistics
        {
            BatchSize = b.BatchSize,
            ComputeInput = Duration(b.ComputeInput),
            ComputeInfer = Duration(b.ComputeInfer),
            ComputeOutput = Duration(b.ComputeOutput),
        }));
        return message;
    }

    private static Inference.OpenInference.Grpc.StatisticDuration Duration(Serving.StatisticDuration d) => new() { Count = d.Count, Ns = d.Ns };
}
