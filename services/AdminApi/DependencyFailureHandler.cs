using AmazonClientException = Amazon.Runtime.AmazonClientException;
using AmazonServiceException = Amazon.Runtime.AmazonServiceException;
using Microsoft.AspNetCore.Diagnostics;
using Npgsql;
using StackExchange.Redis;

namespace Platform.AdminApi;

/// <summary>
/// Answers a request that failed because a server it needs is down or not answering (Postgres, the object store, Redis)
/// with <c>503</c>, <c>Retry-After</c> and <c>{"error": …}</c> naming the server, instead of a bare 500: the request
/// was fine and may be sent again. Anything else is left to the framework's 500.
/// </summary>
internal sealed partial class DependencyFailureHandler(ILogger<DependencyFailureHandler> logger) : IExceptionHandler
{
    /// <summary>Seconds a client is asked to wait before retrying.</summary>
    public const int RetryAfterSeconds = 5;

    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (Dependency(exception, httpContext.RequestAborted) is not var (server, reason) || httpContext.Response.HasStarted)
        {
            return false;
        }

        LogUnavailable(logger, server, httpContext.Request.Method, httpContext.Request.Path, exception.Message);
        httpContext.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        httpContext.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await httpContext.Response.WriteAsJsonAsync(new ApiError($"{server} is unavailable, retry shortly ({reason})"), cancellationToken);
        return true;
    }

    // Which server a failure points at and why; null for anything that is not a server being away. Npgsql and
    // StackExchange.Redis wrap their own timeouts; a bare timeout or an HTTP failure comes from the object store's S3
    // client, the only server AdminApi's requests reach over HTTP.
    private static (string Server, string Reason)? Dependency(Exception exception, CancellationToken requestAborted) => exception switch
    {
        PostgresException postgres => postgres.IsTransient ? ("the database", postgres.Message) : null,
        NpgsqlException => ("the database", exception.Message),
        AmazonServiceException s3 => (int)s3.StatusCode >= 500 ? ("the object store", s3.Message) : null,
        AmazonClientException or HttpRequestException => ("the object store", exception.Message),
        RedisConnectionException or RedisTimeoutException => ("Redis", exception.Message),
        OperationCanceledException or TimeoutException when !requestAborted.IsCancellationRequested => ("the object store", "no answer in time"),
        _ => exception.InnerException is { } inner ? Dependency(inner, requestAborted) : null,
    };

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Server} unavailable: answered {Method} {Path} with 503: {Reason}")]
    private static partial void LogUnavailable(ILogger logger, string server, string method, string path, string reason);
}
