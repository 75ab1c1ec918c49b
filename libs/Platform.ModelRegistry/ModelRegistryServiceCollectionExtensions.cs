using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace Platform.ModelRegistry;

/// <summary>Registration of the model registry services.</summary>
public static class ModelRegistryServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="IModelRegistryReader"/> and <see cref="ModelRegistryNotifications"/>. Needs
    /// <c>AddPlatformDataSource()</c> and <c>AddPlatformRedis()</c>.
    /// </summary>
    public static IHostApplicationBuilder AddPlatformModelRegistry(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddOptions<ModelRegistryOptions>().BindConfiguration(ModelRegistryOptions.SectionName);
        builder.Services.TryAddSingleton<IModelRegistryReader, ModelRegistryReader>();
        builder.Services.TryAddSingleton<ModelRegistryNotifications>();
        return builder;
    }

    /// <summary>Also registers the write side, <see cref="ModelRegistryStore"/>; needs <c>AddPlatformObjectStore()</c> too.</summary>
    public static IHostApplicationBuilder AddPlatformModelRegistryWriter(this IHostApplicationBuilder builder)
    {
        builder.AddPlatformModelRegistry();
        builder.Services.TryAddSingleton<ModelRegistryStore>();
        return builder;
    }

    /// <summary>
    /// Also keeps an in-memory <see cref="IActiveModelsView"/> of the active versions, refreshed on every registry
    /// notification and every <see cref="ModelRegistryOptions.ReconcileInterval"/> (config <c>ModelRegistry:ReconcileInterval</c>).
    /// </summary>
    public static IHostApplicationBuilder AddPlatformActiveModelsView(this IHostApplicationBuilder builder)
    {
        builder.AddPlatformModelRegistry();
        builder.Services.TryAddSingleton<ActiveModelsMonitor>();
        builder.Services.TryAddSingleton<IActiveModelsView>(sp => sp.GetRequiredService<ActiveModelsMonitor>());
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ActiveModelsMonitor>());
        return builder;
    }
}
