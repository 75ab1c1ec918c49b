using Microsoft.Extensions.Logging;
using Platform.Tenancy.Enforcement;
using StackExchange.Redis;

namespace Platform.Tenancy.Admin;

/// <summary>
/// Announces tenancy writes on <see cref="TenancyChannels.Changes"/> so every replica's <see cref="TenantDirectory"/>
/// drops what it cached, and drops this process's own cache synchronously (pub/sub delivery to ourselves is
/// asynchronous, and a key revoked here must stop working here at once).
/// </summary>
public sealed partial class TenancyChangePublisher(IConnectionMultiplexer redis, TenantDirectory directory, ILogger<TenancyChangePublisher> logger)
{
    /// <summary>Message that drops everything (sent after price changes, which concern every tenant).</summary>
    public const string Everything = "*";

    /// <summary>Announces a change to <paramref name="tenantId"/>, its keys or its budget.</summary>
    public Task TenantChangedAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        directory.Invalidate(tenantId);
        return PublishAsync(tenantId.ToString(), cancellationToken);
    }

    /// <summary>Announces a price change.</summary>
    public Task PricesChangedAsync(CancellationToken cancellationToken)
    {
        directory.Invalidate(null);
        return PublishAsync(Everything, cancellationToken);
    }

    private async Task PublishAsync(string message, CancellationToken cancellationToken)
    {
        try
        {
            var database = redis.GetDatabase();
            await database.PublishAsync(RedisChannel.Literal(TenancyChannels.Changes), message).WaitAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The write is committed; replicas see it when their cache entries expire (TenantDirectoryOptions.CacheTtl).
            LogPublishFailed(logger, message, ex.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not announce tenancy change {Message}; replicas pick it up when their cache expires: {Reason}")]
    private static partial void LogPublishFailed(ILogger logger, string message, string reason);
}
