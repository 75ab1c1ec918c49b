using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Platform.Hosting.Infrastructure;

namespace Platform.Hosting;

/// <summary>PostgreSQL for Platform: a native server in run mode, Aspire's container resource in publish mode.</summary>
public static class PostgresBuilderExtensions
{
    /// <summary>The image tag deployed in publish mode: the major version Debian 12 runs natively (15), so both modes run the same SQL.</summary>
    public const string ImageTag = "15.18";

    /// <summary>
    /// The published server's <c>max_connections</c>: every replica of every service holds a pool of its own against it
    /// (<c>Postgres__MaxPoolSize</c>, set per service by the AppHost), and the sum at the overlays' largest scale, surge
    /// pods included, must stay below it (docs/publishing.md, checked by the manifest tests).
    /// </summary>
    public const int PublishedMaxConnections = 350;

    /// <summary>
    /// Adds a PostgreSQL server named <paramref name="name"/> (password parameter <c>&lt;name&gt;-password</c>) with one database
    /// <paramref name="databaseName"/>, and returns the database. Run mode: Debian's <c>postgres</c> as a native process, data in
    /// <c>.platform/&lt;name&gt;</c>. Publish mode: Aspire's <c>AddPostgres</c> with a data volume.
    /// </summary>
    public static IResourceBuilder<IResourceWithConnectionString> AddPlatformPostgres(this IDistributedApplicationBuilder builder,
        string name, string databaseName)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var password = builder.AddPassword($"{name}-password");
        if (builder.ExecutionContext.IsPublishMode)
        {
            return builder.AddPostgres(name, password: password).WithImageTag(ImageTag).WithDataVolume($"{name}-data")
                .WithArgs("-c", $"max_connections={PublishedMaxConnections.ToString(CultureInfo.InvariantCulture)}")
                .AddDatabase(databaseName);
        }

        return builder.AddNativePostgres(name, password.Resource).AddDatabase(databaseName);
    }

    /// <summary>Adds PostgreSQL as a native process (run mode only; the model must stay free of containers there).</summary>
    public static IResourceBuilder<NativePostgresServerResource> AddNativePostgres(this IDistributedApplicationBuilder builder,
        string name, ParameterResource password)
    {
        ArgumentNullException.ThrowIfNull(builder);
        const string package = "apt-get install postgresql";
        var binDirectories = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").OrderDescending().Select(d => Path.Combine(d, "bin")).ToArray()
            : [];
        var postgres = NativeBinaries.Require("postgres", package, binDirectories.Select(d => Path.Combine(d, "postgres")).ToArray());
        var initdb = NativeBinaries.Require("initdb", package, binDirectories.Select(d => Path.Combine(d, "initdb")).ToArray());

        var data = NativeDataDirectory.From(builder);
        var directory = ReachableDirectory(data.For(name));
        var clusterDirectory = Path.Combine(directory, "pgdata");
        var runAs = NativeBinaries.IsRoot ? NativePostgresServerResource.UserName : null;

        // Postgres writes its whole log to stderr, which Aspire shows as errors: a shell moves it to stdout and execs the
        // server. Postgres refuses to run as root: setpriv execs it as user postgres. Both exec, so the pid DCP watches is
        // the server's.
        var server = new NativePostgresServerResource(name, "/bin/sh", directory, password);
        var resource = builder.AddResource(server)
            .WithEndpoint(name: NativePostgresServerResource.PrimaryEndpointName, scheme: "tcp", isProxied: false)
            .WithIconName("DatabaseMultiple")
            .WithArgs(context =>
            {
                context.Args.Add("-c");
                context.Args.Add("exec 2>&1; exec \"$@\"");
                context.Args.Add("postgres"); // $0
                if (runAs is null)
                {
                    context.Args.Add(postgres);
                }
                else
                {
                    foreach (var arg in ProcessRunner.RunAsArguments(runAs).Prepend("setpriv").Append(postgres))
                    {
                        context.Args.Add(arg);
                    }
                }

                context.Args.Add("-D");
                context.Args.Add(clusterDirectory);
                context.Args.Add("-p");
                context.Args.Add(server.PrimaryEndpoint.Property(EndpointProperty.TargetPort));
                foreach (var setting in ServerSettings(clusterDirectory, data.Durable))
                {
                    context.Args.Add("-c");
                    context.Args.Add(setting);
                }
            });

        builder.Eventing.Subscribe<BeforeResourceStartedEvent>(server, async (@event, ct) =>
        {
            var logger = @event.Services.GetRequiredService<ResourceLoggerService>().GetLogger(server);
            await PrepareClusterAsync(initdb, postgres, directory, clusterDirectory, runAs, password, logger, ct).ConfigureAwait(false);
        });
        builder.Eventing.Subscribe<ResourceReadyEvent>(server, async (@event, ct) =>
        {
            var logger = @event.Services.GetRequiredService<ResourceLoggerService>().GetLogger(server);
            await CreateDatabasesAsync(server, logger, ct).ConfigureAwait(false);
        });

        var healthCheck = $"{name}_check";
        builder.Services.AddHealthChecks().AddAsyncCheck(healthCheck, async ct =>
            await ProbeAsync(await server.ConnectionStringExpression.GetValueAsync(ct).ConfigureAwait(false) + ";Database=postgres", ct).ConfigureAwait(false));
        return resource.WithHealthCheck(healthCheck);
    }

    /// <summary>Adds a database to a native server; healthy once it exists and answers.</summary>
    public static IResourceBuilder<NativePostgresDatabaseResource> AddDatabase(this IResourceBuilder<NativePostgresServerResource> builder,
        string name, string? databaseName = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var database = new NativePostgresDatabaseResource(name, databaseName ?? name, builder.Resource);
        builder.Resource.AddDatabase(name, database.DatabaseName);
        var healthCheck = $"{name}_check";
        builder.ApplicationBuilder.Services.AddHealthChecks().AddAsyncCheck(healthCheck, async ct =>
            await ProbeAsync(await database.ConnectionStringExpression.GetValueAsync(ct).ConfigureAwait(false) ?? string.Empty, ct).ConfigureAwait(false));

        // Aspire hands a parent's state down to its children only for containers: a database on a native server mirrors
        // the server's state itself, so WaitFor(database) and the dashboard see it start, run and stop with the server.
        builder.ApplicationBuilder.Eventing.Subscribe<InitializeResourceEvent>(database, (@event, ct) =>
        {
            var stopping = @event.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
            _ = MirrorParentStateAsync(@event.Notifications, database, stopping);
            return Task.CompletedTask;
        });
        return builder.ApplicationBuilder.AddResource(database).WithIconName("Database").WithHealthCheck(healthCheck);
    }

    private static async Task MirrorParentStateAsync(ResourceNotificationService notifications, NativePostgresDatabaseResource database, CancellationToken ct)
    {
        string? last = null;
        try
        {
            await foreach (var update in notifications.WatchAsync(ct).ConfigureAwait(false))
            {
                if (!ReferenceEquals(update.Resource, database.Parent) || update.Snapshot.State?.Text == last)
                {
                    continue;
                }

                last = update.Snapshot.State?.Text;
                await notifications.PublishUpdateAsync(database, s => s with
                {
                    State = update.Snapshot.State,
                    StartTimeStamp = update.Snapshot.StartTimeStamp,
                    StopTimeStamp = update.Snapshot.StopTimeStamp,
                }).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private static IEnumerable<string> ServerSettings(string clusterDirectory, bool durable)
    {
        yield return "listen_addresses=127.0.0.1";
        yield return $"unix_socket_directories={clusterDirectory}";
        yield return "max_connections=200";
        yield return "logging_collector=off";
        if (!durable)
        {
            // Throw-away clusters (tests): a killed process still loses nothing committed, only an OS crash could.
            yield return "fsync=off";
            yield return "synchronous_commit=off";
            yield return "full_page_writes=off";
        }
    }

    /// <summary>
    /// User postgres must traverse every parent of the cluster (e.g. a clone under /root is closed to it): keep the cluster
    /// under /var/lib/platform then, named after the original path so the same checkout finds it again.
    /// </summary>
    private static string ReachableDirectory(string directory)
    {
        if (OperatingSystem.IsWindows() || !NativeBinaries.IsRoot || NativeBinaries.IsReachableByOthers(directory))
        {
            return directory;
        }

        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(directory)))[..16];
        var relocated = Path.Combine("/var/lib/platform", hash);
        Directory.CreateDirectory(relocated);
        const UnixFileMode open = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        File.SetUnixFileMode("/var/lib/platform", open);
        File.SetUnixFileMode(relocated, open);
        return relocated;
    }

    /// <summary>
    /// initdb on first start; on later starts, re-applies the password parameter when it changed (e.g. user secrets were
    /// reset), in single-user mode so no network login with the old one is needed.
    /// </summary>
    private static async Task PrepareClusterAsync(string initdb, string postgres, string directory, string clusterDirectory,
        string? runAs, ParameterResource passwordParameter, ILogger logger, CancellationToken ct)
    {
        var password = await passwordParameter.GetValueAsync(ct).ConfigureAwait(false)
            ?? throw new DistributedApplicationException($"Parameter '{passwordParameter.Name}' has no value.");
        var stamp = Path.Combine(directory, "password.sha256");
        var passwordHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(password)));
        if (!File.Exists(Path.Combine(clusterDirectory, "PG_VERSION")))
        {
            // A half-initialised directory from a killed initdb cannot be reused.
            if (Directory.Exists(clusterDirectory))
            {
                Directory.Delete(clusterDirectory, recursive: true);
            }

            var passwordFile = Path.Combine(directory, ".pwfile");
            await File.WriteAllTextAsync(passwordFile, password, ct).ConfigureAwait(false);
            try
            {
                if (runAs is not null)
                {
                    await ProcessRunner.ChownAsync(directory, runAs, logger, ct).ConfigureAwait(false);
                }

                logger.LogInformation("Creating a PostgreSQL cluster in {Directory}", clusterDirectory);
                await ProcessRunner.RunToCompletionAsync(initdb,
                    ["-D", clusterDirectory, "-U", NativePostgresServerResource.UserName, $"--pwfile={passwordFile}",
                     "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                    runAs, logger, ct).ConfigureAwait(false);
            }
            finally
            {
                File.Delete(passwordFile);
            }
        }
        else if (!File.Exists(stamp) || (await File.ReadAllTextAsync(stamp, ct).ConfigureAwait(false)).Trim() != passwordHash)
        {
            logger.LogWarning("The password parameter {Parameter} changed since the cluster was created; applying it", passwordParameter.Name);
            var escaped = password.Replace("'", "''", StringComparison.Ordinal);
            var script = Path.Combine(directory, ".alter-password.sql");
            await File.WriteAllTextAsync(script, $"ALTER USER {NativePostgresServerResource.UserName} PASSWORD '{escaped}';\n", ct).ConfigureAwait(false);
            try
            {
                if (runAs is not null)
                {
                    await ProcessRunner.ChownAsync(script, runAs, logger, ct).ConfigureAwait(false);
                }

                await ProcessRunner.RunToCompletionAsync("/bin/sh",
                    ["-c", "exec \"$0\" --single -D \"$1\" postgres < \"$2\"", postgres, clusterDirectory, script], runAs, logger, ct).ConfigureAwait(false);
            }
            finally
            {
                File.Delete(script);
            }
        }

        await File.WriteAllTextAsync(stamp, passwordHash, ct).ConfigureAwait(false);
    }

    private static async Task CreateDatabasesAsync(NativePostgresServerResource server, ILogger logger, CancellationToken ct)
    {
        var connectionString = await server.ConnectionStringExpression.GetValueAsync(ct).ConfigureAwait(false);
        await using var dataSource = NpgsqlDataSource.Create(connectionString + ";Database=postgres;Pooling=false");
        foreach (var databaseName in server.Databases.Values)
        {
            await using var exists = dataSource.CreateCommand("SELECT 1 FROM pg_database WHERE datname = $1");
            exists.Parameters.AddWithValue(databaseName);
            if (await exists.ExecuteScalarAsync(ct).ConfigureAwait(false) is not null)
            {
                continue;
            }

            var quoted = "\"" + databaseName.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
            await using var create = dataSource.CreateCommand($"CREATE DATABASE {quoted}");
            await create.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            logger.LogInformation("Created database {Database}", databaseName);
        }
    }

    private static async Task<HealthCheckResult> ProbeAsync(string connectionString, CancellationToken ct)
    {
        try
        {
            var settings = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, Timeout = 3 };
            await using var connection = new NpgsqlConnection(settings.ConnectionString);
            await connection.OpenAsync(ct).ConfigureAwait(false);
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync(ct).ConfigureAwait(false);
            return HealthCheckResult.Healthy(string.Create(CultureInfo.InvariantCulture, $"SELECT 1 on database '{settings.Database}' succeeded"));
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException or ArgumentException)
        {
            return HealthCheckResult.Unhealthy(ex.Message, ex);
        }
    }
}
