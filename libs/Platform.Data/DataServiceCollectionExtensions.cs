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

    /// <summary>Configuration key of the pool bound: <c>Postgres:MaxPoolSize</c> (<c>Postgres__MaxPoolSize</c> in the environment).</summary>
    public const string MaxPoolSizeKey = "Postgres:MaxPoolSize";

    /// <summary>
    /// Registers the platform's <see cref="NpgsqlDataSource"/> through Aspire's Npgsql integration (connection string
    /// <c>ConnectionStrings:&lt;connectionName&gt;</c>, health check "PostgreSql", tracing and metrics), naming the
    /// service in <c>pg_stat_activity</c>. <c>Postgres:MaxPoolSize</c>, when set, bounds the connections this process
    /// opens (Npgsql's default is 100 per process); callers beyond it wait for a free connection.
    /// </summary>
    public static IHostApplicationBuilder AddPlatformDataSource(this IHostApplicationBuilder builder, string connectionName = DefaultConnectionName)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var applicationName = builder.Environment.ApplicationName;
        var configuration = builder.Configuration;
        builder.AddNpgsqlDataSource(connectionName, configureDataSourceBuilder: dataSource =>
        {
            if (string.IsNullOrEmpty(dataSource.ConnectionStringBuilder.ApplicationName))
            {
                // Shows up in pg_stat_activity, which is how one tells the services apart on a shared server.
                dataSource.ConnectionStringBuilder.ApplicationName = applicationName;
            }

            // Every replica of every service shares one server's max_connections: each process gets a bound sized to
            // what it does (the AppHost sets it per service, docs/publishing.md), so a scaled-out deployment cannot open
            // more connections than the server accepts and fail requests with "too many clients".
            if (MaxPoolSize(configuration) is { } maxPoolSize)
            {
                dataSource.ConnectionStringBuilder.MaxPoolSize = maxPoolSize;
                dataSource.ConnectionStringBuilder.MinPoolSize = Math.Min(dataSource.ConnectionStringBuilder.MinPoolSize, maxPoolSize);
            }
        });
        return builder;
    }

    private static int? MaxPoolSize(IConfiguration configuration)
    {
        var value = configuration[MaxPoolSizeKey];
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        return int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var size) && size > 0
            ? size
            : throw new InvalidOperationException($"{MaxPoolSizeKey} must be a positive whole number of connections, not '{value}'.");
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
