using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace Platform.Tenancy.Admin;

/// <summary>Registration of the tenancy write side (AdminApi).</summary>
public static class TenancyAdminServiceCollectionExtensions
{
    /// <summary>
    /// <see cref="TenantStore"/>, <see cref="UsageReports"/> and <see cref="TenancyChangePublisher"/>, plus
    /// <see cref="TenancyServiceCollectionExtensions.AddPlatformTenancy"/> (the publisher drops the local directory's cache,
    /// and tenant keys are authenticated by it). Needs Postgres and Redis registered.
    /// </summary>
    public static IHostApplicationBuilder AddPlatformTenancyAdmin(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddPlatformTenancy();
        builder.Services.TryAddSingleton<TenantStore>();
        builder.Services.TryAddSingleton<UsageReports>();
        builder.Services.TryAddSingleton<TenancyChangePublisher>();
        return builder;
    }
}
