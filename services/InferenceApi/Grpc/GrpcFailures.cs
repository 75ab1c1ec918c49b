using System.Globalization;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Platform.InferenceApi.Serving;
using Platform.InferenceApi.Tenancy;

namespace Platform.InferenceApi.Grpc;

/// <summary>
/// Failures as gRPC statuses: the HTTP status every layer speaks maps to its gRPC code (400 INVALID_ARGUMENT, 401
/// UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND, 413/429 RESOURCE_EXHAUSTED, 499 CANCELLED, 503/502
/// UNAVAILABLE, 504 DEADLINE_EXCEEDED, 500 INTERNAL) with the same message. A retry delay travels twice, in the
/// <c>retry-after</c> trailer (whole seconds, like the HTTP header) and as <c>google.rpc.RetryInfo</c> in the rich
/// status (<c>grpc-status-details-bin</c>), which gRPC client libraries decode.
/// </summary>
public static class GrpcFailures
{
    /// <summary>Trailer with the retry delay in whole seconds.</summary>
    public const string RetryAfterTrailer = "retry-after";

    /// <summary>Trailer carrying the rich <c>google.rpc.Status</c> (read by <c>RpcException.GetRpcStatus()</c>).</summary>
    public const string StatusDetailsTrailer = "grpc-status-details-bin";

    /// <summary>The gRPC code an HTTP status stands for.</summary>
    public static StatusCode CodeOf(int status) => status switch
    {
        400 => StatusCode.InvalidArgument,
        401 => StatusCode.Unauthenticated,
        403 => StatusCode.PermissionDenied,
        404 => StatusCode.NotFound,
        409 => StatusCode.FailedPrecondition,
        413 or 429 => StatusCode.ResourceExhausted,
        499 => StatusCode.Cancelled,
        502 or 503 => StatusCode.Unavailable,
        504 => StatusCode.DeadlineExceeded,
        _ => StatusCode.Internal,
    };

    /// <summary>The HTTP status a gRPC code is recorded as (usage records and metrics speak HTTP).</summary>
    public static int HttpStatusOf(StatusCode code) => Platform.Inference.Routing.WorkerClient.HttpStatusOf(code) switch
    {
        500 when code == StatusCode.Unauthenticated => 401,
        500 when code == StatusCode.PermissionDenied => 403,
        var status => status,
    };

    /// <summary>An <see cref="RpcException"/> for a pipeline failure.</summary>
    public static RpcException From(InferenceFailure failure)
    {
        ArgumentNullException.ThrowIfNull(failure);
        return Create(failure.Status, failure.Message, failure.RetryAfterMs, null);
    }

    /// <summary>An <see cref="RpcException"/> for an enforcement refusal.</summary>
    public static RpcException From(EnforcementRefusal refusal)
    {
        ArgumentNullException.ThrowIfNull(refusal);
        return Create(refusal.Status, refusal.Message, refusal.RetryAfterMs, refusal.Challenge);
    }

    /// <summary>An <see cref="RpcException"/> for <paramref name="status"/>.</summary>
    public static RpcException Create(int status, string message, int retryAfterMs = 0, string? challenge = null)
    {
        var code = CodeOf(status);
        var trailers = new Metadata();
        var rich = new Google.Rpc.Status { Code = (int)code, Message = message };
        if (status is 429 or 503)
        {
            var delay = TimeSpan.FromMilliseconds(Math.Max(retryAfterMs, 1));
            trailers.Add(RetryAfterTrailer, InferenceHandler.RetryAfterSeconds(retryAfterMs).ToString(CultureInfo.InvariantCulture));
            rich.Details.Add(Any.Pack(new RetryInfo { RetryDelay = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(delay) }));
        }

        if (challenge is not null)
        {
            trailers.Add("www-authenticate", challenge);
        }

        // What Grpc.StatusProto's ToRpcException writes, plus the trailers above.
        trailers.Add(StatusDetailsTrailer, rich.ToByteArray());
        return new RpcException(new global::Grpc.Core.Status(code, message), trailers);
    }
}
