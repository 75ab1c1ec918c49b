using System.Text.Json;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Platform.ModelRegistry;

/// <summary>A registry change announced to every service; receivers re-read the registry rather than trust the payload.</summary>
/// <param name="Model">Model whose versions or settings changed.</param>
/// <param name="Version">Version concerned, or null for model-wide changes (settings).</param>
/// <param name="Kind">"registered", "activated", "deactivated", "deleted", "settings" or "bindings" (a version's feature bindings).</param>
public sealed record ModelRegistryChange(string Model, long? Version, string Kind);

/// <summary>
/// Redis pub/sub of <see cref="ModelRegistryChange"/> on channel <see cref="Channel"/>. Delivery is best effort
/// (pub/sub has no replay), which is why <see cref="ActiveModelsMonitor"/> also reconciles periodically.
/// </summary>
public sealed partial class ModelRegistryNotifications(IConnectionMultiplexer redis, ILogger<ModelRegistryNotifications> logger)
{
    /// <summary>The pub/sub channel.</summary>
    public const string Channel = "platform:model-registry:changes";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Publishes a change; a Redis failure is logged, not thrown, since the periodic reconcile will catch up.</summary>
    /// <returns>Number of subscribers that received it (0 when publishing failed).</returns>
    public async Task<long> PublishAsync(ModelRegistryChange change, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(change);
        try
        {
            var database = redis.GetDatabase();
            return await database.PublishAsync(RedisChannel.Literal(Channel), JsonSerializer.Serialize(change, Json)).WaitAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogPublishFailed(logger, change.Model, change.Kind, ex.Message);
            return 0;
        }
    }

    /// <summary>Subscribes <paramref name="handler"/> to changes; the subscription lasts as long as the Redis connection object.</summary>
    /// <exception cref="RedisException">Redis cannot be reached (callers retry).</exception>
    public async Task SubscribeAsync(Action<ModelRegistryChange> handler, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(handler);
        var database = redis.GetDatabase();
        var subscriber = database.Multiplexer.GetSubscriber();
        await subscriber.SubscribeAsync(RedisChannel.Literal(Channel), (_, message) =>
        {
            ModelRegistryChange? change = null;
            try
            {
                change = JsonSerializer.Deserialize<ModelRegistryChange>((string)message!, Json);
            }
            catch (JsonException ex)
            {
                LogMalformed(logger, ex.Message);
            }
            if (change is not null)
            {
                handler(change);
            }
        }).WaitAsync(cancellationToken);
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Warning, Message = "Could not publish registry change {Kind} of {Model}; workers pick it up at their next reconcile: {Reason}")]
    private static partial void LogPublishFailed(ILogger logger, string model, string kind, string reason);

    [LoggerMessage(EventId = 11, Level = LogLevel.Warning, Message = "Ignoring a malformed registry change message: {Reason}")]
    private static partial void LogMalformed(ILogger logger, string reason);
}
