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

    /// <summary>Name of the health check added by <see cref="AddPlatformDataSource"/>.</summary>
    public const string HealthCheckName = "postgres";

    /// <summary>
    /// Registers a singleton <see cref="NpgsqlDataSource"/> built from <c>ConnectionStrings:{connectionName}</c> and the
    /// <c>postgres</c> health check (<c>SELECT 1</c>). Opening no connection here keeps start-up fast.
    /// </summary>
    /// <exception cref="InvalidOperationException">The connection string is missing.</exception>
    public static IHostApplicationBuilder AddPlatformDataSource(this IHostApplicationBuilder builder, string connectionName = DefaultConnectionName)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var connectionString = builder.Configuration.GetConnectionString(connectionName);
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new InvalidOperationException(
                $"Connection string '{connectionName}' is missing: set configuration key 'ConnectionStrings:{connectionName}' "
                + $"(environment variable 'ConnectionStrings__{connectionName}'), e.g. 'Host=127.0.0.1;Port=5432;Username=postgres;Password=...;Database={connectionName}'.");
        }

        var applicationName = builder.Environment.ApplicationName;
        builder.Services.TryAddSingleton(sp =>
        {
            var dataSourceBuilder = new NpgsqlDataSourceBuilder(connectionString);
            if (string.IsNullOrEmpty(dataSourceBuilder.ConnectionStringBuilder.ApplicationName))
            {
                // Shows up in pg_stat_activity, which is how one tells the services apart on a shared server.
                dataSourceBuilder.ConnectionStringBuilder.ApplicationName = applicationName;
            }

            dataSourceBuilder.UseLoggerFactory(sp.GetRequiredService<ILoggerFactory>());
            return dataSourceBuilder.Build();
        });

        builder.Services.AddHealthChecks()
            .AddCheck<PostgresHealthCheck>(HealthCheckName, timeout: TimeSpan.FromSeconds(5));
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
