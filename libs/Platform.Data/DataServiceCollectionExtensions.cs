using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Platform.Data.Migrations;

namespace Platform.Data;

/// <summary>Registration of the Platform PostgreSQL data source, its health check and schema migrations.</summary>
public static class DataServiceCollectionExtensions
{
    /// <summary>Default connection name: configuration key <c>ConnectionStrings:platformdb</c>.</summary>
    public const string DefaultConnectionName = "platformdb";

    /// <summary>Name of the health check Aspire's Npgsql integration adds.</summary>
    public const string HealthCheckName = "PostgreSql";

    /// <summary>
    /// Registers the platform's <see cref="NpgsqlDataSource"/> through Aspire's Npgsql integration (connection string
    /// <c>ConnectionStrings:&lt;connectionName&gt;</c>, health check "PostgreSql", tracing and metrics), naming the
    /// service in <c>pg_stat_activity</c>.
    /// </summary>
    public static IHostApplicationBuilder AddPlatformDataSource(this IHostApplicationBuilder builder, string connectionName = DefaultConnectionName)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var applicationName = builder.Environment.ApplicationName;
        builder.AddNpgsqlDataSource(connectionName, configureDataSourceBuilder: dataSource =>
        {
            if (string.IsNullOrEmpty(dataSource.ConnectionStringBuilder.ApplicationName))
            {
                // Shows up in pg_stat_activity, which is how one tells the services apart on a shared server.
                dataSource.ConnectionStringBuilder.ApplicationName = applicationName;
            }
        });
        return builder;
    }

    /// <summary>
    /// Applies the SQL migrations embedded in <paramref name="assembly"/> under <paramref name="resourcePrefix"/> in the
    /// background at start, and adds a <c>migrations</c> health check that stays unhealthy until they are applied, so the
    /// service is live at once but ready only on the migrated schema.
    /// </summary>
    public static IHostApplicationBuilder AddPlatformMigrations(this IHostApplicationBuilder builder, Assembly assembly, string resourcePrefix)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(assembly);
        ArgumentException.ThrowIfNullOrWhiteSpace(resourcePrefix);

        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.TryAddSingleton<IMigrationSource>(new EmbeddedResourceMigrationSource(assembly, resourcePrefix));
        builder.Services.TryAddSingleton<MigrationRunner>();
        builder.Services.TryAddSingleton<MigrationState>();
        builder.Services.AddHostedService<MigrationHostedService>();
        builder.Services.AddHealthChecks().AddCheck<MigrationHealthCheck>(MigrationHealthCheck.Name);
        return builder;
    }
}
