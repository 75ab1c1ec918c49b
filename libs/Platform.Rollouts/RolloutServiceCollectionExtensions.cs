using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace Platform.Rollouts;

/// <summary>Registration of the rollout services.</summary>
public static class RolloutServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="RolloutStore"/> and <see cref="RolloutNotifications"/> (AdminApi's side). Needs
    /// <c>AddPlatformDataSource()</c> and <c>AddPlatformRedisClient()</c>.
    /// </summary>
    public static IHostApplicationBuilder AddPlatformRollouts(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.TryAddSingleton<RolloutStore>();
        builder.Services.TryAddSingleton<RolloutNotifications>();
        return builder;
    }

    /// <summary>
    /// Also keeps the rollouts in effect in memory (<see cref="IRolloutView"/>, config section <c>Rollouts</c>) for
    /// routing (InferenceApi's side).
    /// </summary>
    public static IHostApplicationBuilder AddPlatformRolloutView(this IHostApplicationBuilder builder)
    {
        builder.AddPlatformRollouts();
        builder.Services.AddOptions<RolloutViewOptions>().BindConfiguration(RolloutViewOptions.SectionName);
        builder.Services.TryAddSingleton<RolloutMonitor>();
        builder.Services.TryAddSingleton<IRolloutView>(sp => sp.GetRequiredService<RolloutMonitor>());
        builder.Services.AddHostedService(sp => sp.GetRequiredService<RolloutMonitor>());
        builder.Services.AddOptions<RolloutControllerOptions>().BindConfiguration(RolloutViewOptions.SectionName);
        builder.Services.TryAddSingleton<RolloutOutcomeRecorder>();
        builder.Services.AddHostedService<RolloutOutcomeFlusher>();
        return builder;
    }

    /// <summary>
    /// Also runs the <see cref="RolloutController"/> that judges running rollouts against their guardrails (AdminApi's side;
    /// one replica at a time, by a Redis lease; config section <c>Rollouts</c>).
    /// </summary>
    public static IHostApplicationBuilder AddPlatformRolloutController(this IHostApplicationBuilder builder)
    {
        builder.AddPlatformRollouts();
        builder.Services.AddOptions<RolloutControllerOptions>().BindConfiguration(RolloutViewOptions.SectionName);
        builder.Services.TryAddSingleton<RolloutOutcomeReader>();
        builder.Services.TryAddSingleton<RolloutTelemetry>();
        builder.Services.AddHostedService<RolloutController>();
        return builder;
    }
}
