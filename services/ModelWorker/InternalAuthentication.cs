using System.Diagnostics.Metrics;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Platform.Inference.Protocol;

namespace Platform.ModelWorker;

/// <summary>
/// The internal credential this worker accepts (<see cref="InternalCredential"/>): the AppHost's secret parameter
/// <c>internal-api-key</c>. A worker without one does not start: it would otherwise serve anyone who can reach it.
/// </summary>
internal sealed partial class InternalKeyVerifier
{
    private readonly string _key;
    private readonly Counter<long> _refusals;
    private readonly ILogger<InternalKeyVerifier> _logger;

    public InternalKeyVerifier(IConfiguration configuration, IMeterFactory meterFactory, ILogger<InternalKeyVerifier> logger)
    {
        var key = configuration[InternalCredential.ConfigurationKey];
        if (key is null || key.Length < InternalCredential.MinimumLength)
        {
            throw new InvalidOperationException(
                $"{InternalCredential.ConfigurationKey} must be set (at least {InternalCredential.MinimumLength} characters): the worker serves only callers holding the AppHost's internal credential.");
        }

        _key = key;
        _logger = logger;
        _refusals = meterFactory.Create("Platform.ModelWorker").CreateCounter<long>("platform.worker.auth.refusals",
            description: "Calls refused for lacking the internal credential, by transport and reason");
    }

    /// <summary>Whether the presented <c>authorization</c> value carries the key; a refusal is counted and logged (never the value).</summary>
    public bool Verify(string? authorization, string transport, string? peer, string what)
    {
        if (InternalCredential.Matches(authorization, _key))
        {
            return true;
        }

        var reason = authorization is null ? "missing" : "wrong";
        _refusals.Add(1, new KeyValuePair<string, object?>("transport", transport), new KeyValuePair<string, object?>("reason", reason));
        LogRefused(_logger, what, transport, peer ?? "unknown", reason);
        return false;
    }

    [LoggerMessage(EventId = 60, Level = LogLevel.Warning, Message = "Refused {What} over {Transport} from {Peer}: internal credential {Reason}")]
    private static partial void LogRefused(ILogger logger, string what, string transport, string peer, string reason);
}

/// <summary>Every call of the worker's gRPC service (<see cref="WorkerGrpcService"/>) must carry the internal credential: UNAUTHENTICATED otherwise.</summary>
internal sealed class InternalKeyInterceptor(InternalKeyVerifier verifier) : Interceptor
{
    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(continuation);
        if (!verifier.Verify(context.RequestHeaders.GetValue(InternalCredential.Header), "grpc", context.Peer, context.Method))
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated,
                "the model worker serves only platform services: 'authorization: Bearer <internal-api-key>' is missing or wrong"));
        }

        return continuation(request, context);
    }
}

/// <summary>The JSON model listing over HTTP/1.1 needs the internal credential too: 401 otherwise.</summary>
internal sealed class InternalKeyFilter(InternalKeyVerifier verifier) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        var http = context.HttpContext;
        if (!verifier.Verify(http.Request.Headers.Authorization.FirstOrDefault(), "http", http.Connection.RemoteIpAddress?.ToString(), http.Request.Path))
        {
            http.Response.Headers.WWWAuthenticate = "Bearer realm=\"model-worker\"";
            return Results.Json(new { error = "the model worker serves only platform services: 'Authorization: Bearer <internal-api-key>' is missing or wrong" },
                statusCode: StatusCodes.Status401Unauthorized);
        }

        return await next(context);
    }
}
