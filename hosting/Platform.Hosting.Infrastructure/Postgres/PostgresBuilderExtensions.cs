using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Npgsql;
using Platform.Hosting.ApplicationModel;
using Platform.Hosting.Infrastructure;

namespace Platform.Hosting;

/// <summary>Aspire's <c>AddPostgres</c> / <c>AddDatabase</c>.</summary>
public static class PostgresBuilderExtensions
{
    /// <summary>Image deployed in publish mode (pinned; Debian 12's apt ships 15 for run mode).</summary>
    public const string Image = "docker.io/library/postgres";

    /// <summary>Pinned image tag.</summary>
    public const string Tag = "15.18";

    /// <summary>
    /// Adds a PostgreSQL server: endpoint "tcp" (5432 in a pod), user "postgres", password parameter
    /// <c>&lt;name&gt;-password</c>, scram-sha-256 authentication.
    /// </summary>
    public static IResourceBuilder<PostgresServerResource> AddPostgres(this IDistributedApplicationBuilder builder, string name,
        IResourceBuilder<ParameterResource>? userName = null, IResourceBuilder<ParameterResource>? password = null, int? port = null)
    {
        builder.EnsureNameAvailable(name);
        var user = userName?.Resource ?? new ParameterResource($"{name}-username", () => "postgres", secret: false);
        var pw = password ?? builder.AddParameter($"{name}-password", secret: true);
        var server = new PostgresServerResource(name, user, pw.Resource);
        return builder.AddResource(server)
            .WithEndpoint(new EndpointAnnotation(PostgresServerResource.PrimaryEndpointName, "tcp", port, 5432, transport: "tcp"))
            .WithImage(Image, Tag)
            .WithEnvironment("POSTGRES_HOST_AUTH_METHOD", "scram-sha-256")
            .WithEnvironment("POSTGRES_INITDB_ARGS", "--auth-host=scram-sha-256 --auth-local=scram-sha-256")
            .WithEnvironment("POSTGRES_USER", ReferenceExpression.Create($"{user}"))
            .WithEnvironment("POSTGRES_PASSWORD", pw)
            .WithAnnotation(new NativeProcessAnnotation(new PostgresLauncher(server)))
            .WithAnnotation(new ResourceHealthCheckAnnotation("postgres", (ctx, ct) => CheckAsync(server, ct)));
    }

    /// <summary>Adds a database, created once the server is ready.</summary>
    public static IResourceBuilder<PostgresDatabaseResource> AddDatabase(this IResourceBuilder<PostgresServerResource> builder,
        string name, string? databaseName = null)
    {
        var database = new PostgresDatabaseResource(name, databaseName ?? name, builder.Resource);
        builder.Resource.Databases.Add(database);
        return builder.ApplicationBuilder.AddResource(database)
            .WithAnnotation(new ResourceRelationshipAnnotation(builder.Resource, "Parent"))
            .WithAnnotation(new ResourceHealthCheckAnnotation("postgres-database", async (ctx, ct) =>
            {
                var cs = await database.ConnectionStringExpression.GetValueAsync(ct).ConfigureAwait(false);
                return await ProbeAsync(cs!, ct).ConfigureAwait(false);
            }));
    }

    /// <summary>Keeps the cluster's files in <c>.platform/&lt;name&gt;/</c> (a PVC in Kubernetes).</summary>
    public static IResourceBuilder<PostgresServerResource> WithDataVolume(this IResourceBuilder<PostgresServerResource> builder, string? name = null) =>
        ResourceBuilderExtensions.WithDataVolume(builder, name, "/var/lib/postgresql/data");

    private static async Task<HealthCheckResult> CheckAsync(PostgresServerResource server, CancellationToken ct)
    {
        var cs = await server.ConnectionStringExpression.GetValueAsync(ct).ConfigureAwait(false);
        return await ProbeAsync(cs + ";Database=postgres", ct).ConfigureAwait(false);
    }

    private static async Task<HealthCheckResult> ProbeAsync(string connectionString, CancellationToken ct)
    {
        try
        {
            var csb = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, Timeout = 3 };
            await using var connection = new NpgsqlConnection(csb.ConnectionString);
            await connection.OpenAsync(ct).ConfigureAwait(false);
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync(ct).ConfigureAwait(false);
            return HealthCheckResult.Healthy($"SELECT 1 on database '{csb.Database}' succeeded");
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            return HealthCheckResult.Unhealthy(ex.Message, ex);
        }
    }
}

/// <summary>Runs PostgreSQL 15 natively: initdb once, then postgres on a loopback port.</summary>
internal sealed class PostgresLauncher(PostgresServerResource server) : INativeProcessLauncher
{
    private static readonly string[] BinDirectories =
        Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").OrderDescending().Select(d => Path.Combine(d, "bin")).ToArray()
            : [];

    public string InstallHint => $"{NativeBinaries.InstallCommand} (apt-get install postgresql)";

    public async Task<NativeProcessSpec> PrepareAsync(NativeProcessContext context, CancellationToken cancellationToken)
    {
        var postgres = NativeBinaries.Require("postgres", InstallHint, BinDirectories.Select(d => Path.Combine(d, "postgres")).ToArray());
        var initdb = NativeBinaries.Require("initdb", InstallHint, BinDirectories.Select(d => Path.Combine(d, "initdb")).ToArray());
        var runAs = NativeBinaries.IsRoot ? "postgres" : null;
        var dataDir = Path.Combine(context.DataDirectory, "pgdata");
        if (runAs is not null && !OperatingSystem.IsWindows() && !NativeBinaries.IsReachableByOthers(context.DataDirectory))
        {
            // e.g. a clone under /root: user postgres cannot traverse it. Keep the cluster where it can,
            // under a name derived from the original path so the same checkout finds it again.
            var hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(context.DataDirectory)))[..16];
            var relocated = Path.Combine("/var/lib/platform", hash.ToLowerInvariant());
            Directory.CreateDirectory(relocated);
            File.SetUnixFileMode("/var/lib/platform", (UnixFileMode)Convert.ToInt32("755", 8));
            File.SetUnixFileMode(relocated, (UnixFileMode)Convert.ToInt32("755", 8));
            context.Logger.LogWarning("User postgres cannot reach {Directory}; keeping the cluster in {Relocated} instead", context.DataDirectory, relocated);
            context = context with { DataDirectory = relocated };
            dataDir = Path.Combine(relocated, "pgdata");
        }

        if (!File.Exists(Path.Combine(dataDir, "PG_VERSION")))
        {
            // A half-initialised directory from a killed initdb cannot be reused.
            if (Directory.Exists(dataDir))
            {
                Directory.Delete(dataDir, recursive: true);
            }

            var pwFile = Path.Combine(context.DataDirectory, ".pwfile");
            await File.WriteAllTextAsync(pwFile, server.PasswordParameter.Value, cancellationToken).ConfigureAwait(false);
            try
            {
                await ProcessRunner.ChownAsync(context.DataDirectory, runAs, cancellationToken).ConfigureAwait(false);
                await ProcessRunner.RunToCompletionAsync(initdb,
                    ["-D", dataDir, "-U", server.UserNameParameter.Value, $"--pwfile={pwFile}", "--auth=scram-sha-256",
                     "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                    runAs, context.Logger, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                File.Delete(pwFile);
            }
        }

        var port = context.Endpoints[PostgresServerResource.PrimaryEndpointName].Port;
        var args = new List<string>
        {
            "-D", dataDir, "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-c", "listen_addresses=127.0.0.1", "-c", $"unix_socket_directories={dataDir}",
            "-c", "max_connections=200", "-c", "logging_collector=off",
        };
        if (!context.Persistent)
        {
            // Throw-away clusters (tests, no data volume): a process kill still loses nothing
            // committed, only an OS crash could, and start-up and writes are much faster.
            args.AddRange(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        }

        return new NativeProcessSpec(postgres, args, runAs, StopSignal: 2 /* SIGINT: fast shutdown */);
    }

    public async Task OnReadyAsync(NativeProcessContext context, CancellationToken cancellationToken)
    {
        var cs = await server.ConnectionStringExpression.GetValueAsync(cancellationToken).ConfigureAwait(false);
        await using var dataSource = NpgsqlDataSource.Create(cs + ";Database=postgres;Pooling=false");
        foreach (var database in server.Databases)
        {
            await using var exists = dataSource.CreateCommand("SELECT 1 FROM pg_database WHERE datname = $1");
            exists.Parameters.AddWithValue(database.DatabaseName);
            if (await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is null)
            {
                var quoted = "\"" + database.DatabaseName.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
                await using var create = dataSource.CreateCommand($"CREATE DATABASE {quoted}");
                await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                context.Logger.LogInformation("Created database {Database} on {Server}", database.DatabaseName, server.Name);
            }
        }
    }
}
