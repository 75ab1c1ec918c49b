using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Google.Protobuf;
using Microsoft.Extensions.Options;
using Platform.Inference.OpenInference;
using Platform.Inference.Protocol;
using Platform.Inference.Protocol.Wire;
using Platform.Redis;
using StackExchange.Redis;

namespace Platform.InferenceApi.Serving;

/// <summary>
/// Inference results (the worker's outputs, as the hop carries them) in Redis, keyed by model version and a SHA-256 of the inputs (names, types, shapes, bytes) and
/// the requested outputs. Best effort: a Redis failure or a slow lookup is a miss, never a failed request.
/// </summary>
public sealed partial class ResponseCache(IConnectionMultiplexer redis, IOptions<InferenceApiOptions> options, ILogger<ResponseCache> logger)
{
    /// <summary>Key prefix.</summary>
    public const string KeyPrefix = "platform:infer-cache:";

    /// <summary>The cache key of a request to <paramref name="model"/> version <paramref name="version"/>.</summary>
    public static string Key(string model, long version, InferRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> number = stackalloc byte[8];
        // Sorted by name: the same inputs in another order are the same request.
        foreach (var input in request.Inputs.OrderBy(i => i.Name, StringComparer.Ordinal))
        {
            AppendString(hash, input.Name);
            AppendString(hash, input.DataType.ToProtocolName());
            BinaryPrimitives.WriteInt64LittleEndian(number, input.Shape.Length);
            hash.AppendData(number);
            foreach (var dimension in input.Shape)
            {
                BinaryPrimitives.WriteInt64LittleEndian(number, dimension);
                hash.AppendData(number);
            }

            BinaryPrimitives.WriteInt64LittleEndian(number, input.Data.Length);
            hash.AppendData(number);
            hash.AppendData(input.Data.Span);
        }

        hash.AppendData("|outputs|"u8);
        foreach (var output in request.Outputs.Select(o => o.Name).Order(StringComparer.Ordinal))
        {
            AppendString(hash, output);
        }

        return $"{KeyPrefix}{model}:{version}:{Convert.ToHexStringLower(hash.GetHashAndReset())}";
    }

    /// <summary>The cached outputs, or null on a miss (including Redis being slow or down).</summary>
    public async Task<InferItemResult?> GetAsync(string key, CancellationToken cancellationToken)
    {
        try
        {
            var database = redis.GetDatabase();
            var value = await RedisSpans.TraceAsync("GET", "response_cache.lookup", 1,
                () => database.StringGetAsync(key).WaitAsync(options.Value.CacheLookupTimeout, cancellationToken));
            return value.IsNull ? null : InferItemResult.Parser.ParseFrom((byte[])value!);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or InvalidProtocolBufferException)
        {
            LogCacheFailed(logger, "lookup", ex.Message);
            return null;
        }
    }

    /// <summary>Stores outputs for <paramref name="ttl"/> without waiting for Redis to confirm.</summary>
    public async Task SetAsync(string key, InferItemResult response, TimeSpan ttl, CancellationToken cancellationToken)
    {
        try
        {
            var database = redis.GetDatabase();
            await RedisSpans.TraceAsync("SET", "response_cache.store", 1,
                () => database.StringSetAsync(key, response.ToByteArray(), ttl, flags: CommandFlags.FireAndForget));
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogCacheFailed(logger, "store", ex.Message);
        }
    }

    private static void AppendString(IncrementalHash hash, string value)
    {
        Span<byte> length = stackalloc byte[4];
        var bytes = Encoding.UTF8.GetBytes(value);
        BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
        hash.AppendData(length);
        hash.AppendData(bytes);
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Warning, Message = "Response cache {Operation} failed; serving without the cache: {Reason}")]
    private static partial void LogCacheFailed(ILogger logger, string operation, string reason);
}
