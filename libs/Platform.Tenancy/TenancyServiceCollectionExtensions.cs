using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Platform.Tenancy.Enforcement;

namespace Platform.Tenancy;

/// <summary>Registration of the tenancy services.</summary>
public static class TenancyServiceCollectionExtensions
{
    /// <summary>
    /// The request-path side: <see cref="TenantDirectory"/> (keys, tenants, budgets, prices; options from section
    /// <c>Tenancy</c>), <see cref="UsageLedger"/> and <see cref="UsageBuffer"/>. Needs Postgres and Redis registered.
    /// </summary>
    public static IHostApplicationBuilder AddPlatformTenancy(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddOptions<TenantDirectoryOptions>().BindConfiguration(TenantDirectoryOptions.SectionName);
        builder.Services.TryAddSingleton<TenantDirectory>();
        builder.Services.AddOptions<UsageLedgerOptions>().BindConfiguration(UsageLedgerOptions.SectionName);
        builder.Services.TryAddSingleton<UsageLedger>();
        builder.Services.TryAddSingleton<UsageBuffer>();
        return builder;
    }

    /// <summary>The consumer that moves buffered usage records and budget events into Postgres (AdminApi runs it).</summary>
    public static IHostApplicationBuilder AddPlatformUsageWriter(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddMetrics();
        builder.Services.TryAddSingleton<UsageWriterTelemetry>();
        builder.Services.AddHostedService<UsageWriter>();
        return builder;
    }
}
