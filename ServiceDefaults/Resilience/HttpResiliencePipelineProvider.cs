using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace Platform.ServiceDefaults.Resilience;

/// <summary>
/// Builds and caches one pipeline per named client. Handlers are recycled by IHttpClientFactory every few minutes;
/// keeping pipelines here keeps circuit-breaker state across that recycling.
/// </summary>
internal sealed partial class HttpResiliencePipelineProvider(
    IOptionsMonitor<HttpResilienceOptions> options,
    TimeProvider timeProvider,
    ILoggerFactory loggerFactory)
{
    internal static readonly ResiliencePropertyKey<HttpRequestMessage> RequestKey = new("Platform.Http.Request");

    private readonly ConcurrentDictionary<string, Lazy<ResiliencePipeline<HttpResponseMessage>?>> _pipelines = new(StringComparer.Ordinal);
    private readonly ILogger _logger = loggerFactory.CreateLogger("Platform.ServiceDefaults.Resilience");

    /// <summary>The pipeline of <paramref name="clientName"/>, or null when that client opted out.</summary>
    public ResiliencePipeline<HttpResponseMessage>? GetPipeline(string clientName) =>
        _pipelines.GetOrAdd(clientName, name => new Lazy<ResiliencePipeline<HttpResponseMessage>?>(() => Build(name))).Value;

    private ResiliencePipeline<HttpResponseMessage>? Build(string clientName)
    {
        var settings = options.Get(clientName);
        if (!settings.Enabled)
        {
            return null;
        }

        var builder = new ResiliencePipelineBuilder<HttpResponseMessage>
        {
            Name = string.IsNullOrEmpty(clientName) ? "default" : clientName,
            TimeProvider = timeProvider,
        };

        // Order matters: total timeout wraps retries; the breaker sees every attempt; the attempt timeout is innermost.
        builder.AddTimeout(new TimeoutStrategyOptions { Timeout = settings.TotalRequestTimeout, Name = "total-timeout" });

        if (settings.MaxRetryAttempts > 0)
        {
            builder.AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                Name = "retry",
                MaxRetryAttempts = settings.MaxRetryAttempts,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = settings.RetryBaseDelay,
                ShouldHandle = args => ValueTask.FromResult(IsIdempotent(args.Context) && IsTransient(args.Outcome)),
                DelayGenerator = args => ValueTask.FromResult(RetryAfter(args.Outcome, settings.MaxRetryAfter)),
                OnRetry = args =>
                {
                    var request = args.Context.Properties.GetValue(RequestKey, null!);
                    LogRetry(_logger, clientName, request?.Method.Method, request?.RequestUri, args.AttemptNumber + 1,
                        args.RetryDelay.TotalMilliseconds, Describe(args.Outcome));
                    return ValueTask.CompletedTask;
                },
            });
        }

        builder.AddCircuitBreaker(new CircuitBreakerStrategyOptions<HttpResponseMessage>
        {
            Name = "circuit-breaker",
            FailureRatio = settings.CircuitBreakerFailureRatio,
            MinimumThroughput = settings.CircuitBreakerMinimumThroughput,
            SamplingDuration = settings.CircuitBreakerSamplingDuration,
            BreakDuration = settings.CircuitBreakerBreakDuration,
            ShouldHandle = args => ValueTask.FromResult(IsTransient(args.Outcome)),
            OnOpened = args =>
            {
                LogCircuitOpened(_logger, clientName, args.BreakDuration.TotalMilliseconds, Describe(args.Outcome));
                return ValueTask.CompletedTask;
            },
            OnClosed = _ =>
            {
                LogCircuitClosed(_logger, clientName);
                return ValueTask.CompletedTask;
            },
        });

        builder.AddTimeout(new TimeoutStrategyOptions { Timeout = settings.AttemptTimeout, Name = "attempt-timeout" });
        return builder.Build();
    }

    internal static bool IsIdempotent(ResilienceContext context)
    {
        if (!context.Properties.TryGetValue(RequestKey, out var request))
        {
            return false;
        }

        var method = request.Method;
        return method == HttpMethod.Get || method == HttpMethod.Head || method == HttpMethod.Options
            || method == HttpMethod.Put || method == HttpMethod.Delete || method == HttpMethod.Trace;
    }

    internal static bool IsTransient(Outcome<HttpResponseMessage> outcome) => outcome switch
    {
        { Exception: HttpRequestException or TimeoutRejectedException } => true,
        { Result: { } response } => (int)response.StatusCode >= 500
            || response.StatusCode is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests,
        _ => false,
    };

    private static TimeSpan? RetryAfter(Outcome<HttpResponseMessage> outcome, TimeSpan max)
    {
        var retryAfter = outcome.Result?.Headers.RetryAfter;
        var delay = retryAfter?.Delta;
        if (delay is null && retryAfter?.Date is { } date)
        {
            delay = date - DateTimeOffset.UtcNow;
        }

        // Null falls back to the exponential backoff.
        return delay is { } d && d > TimeSpan.Zero && d <= max ? d : null;
    }

    private static string Describe(Outcome<HttpResponseMessage> outcome) =>
        outcome.Exception is { } ex ? ex.GetType().Name : $"HTTP {(int?)outcome.Result?.StatusCode}";

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning,
        Message = "HTTP client {ClientName}: retrying {Method} {Uri} (attempt {Attempt}) in {DelayMs} ms after {Outcome}")]
    private static partial void LogRetry(ILogger logger, string clientName, string? method, Uri? uri, int attempt, double delayMs, string outcome);

    [LoggerMessage(EventId = 2, Level = LogLevel.Error,
        Message = "HTTP client {ClientName}: circuit opened for {BreakMs} ms after {Outcome}")]
    private static partial void LogCircuitOpened(ILogger logger, string clientName, double breakMs, string outcome);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "HTTP client {ClientName}: circuit closed")]
    private static partial void LogCircuitClosed(ILogger logger, string clientName);
}
