using System.Security.Cryptography;
using Amazon.S3.Model;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using Platform.Hosting;
using Platform.ObjectStore;
using Platform.TestSupport;
using StackExchange.Redis;

[assembly: AssemblyFixture(typeof(Platform.Hosting.Tests.NativeInfrastructureFixture))]

namespace Platform.Hosting.Tests;

/// <summary>The three native servers in one model of their own, run by Aspire's orchestrator as the AppHost runs them.</summary>
public sealed class NativeInfrastructureFixture : IAsyncLifetime
{
    public const string PostgresPassword = "pg-password-in-test";
    public const string RedisPassword = "redis-password-in-test";

    public PlatformApp App { get; private set; } = null!;

    public async ValueTask InitializeAsync() => App = await PlatformApp.StartModelAsync(builder =>
    {
        builder.AddNativePostgres("postgres", builder.AddParameter("postgres-password", PostgresPassword, secret: true).Resource).AddDatabase("appdb");
        builder.AddNativeRedis("redis", builder.AddParameter("redis-password", RedisPassword, secret: true).Resource);
        builder.AddNativeObjectStore("objectstore", builder.AddParameter("objectstore-user", "tester").Resource,
            builder.AddParameter("objectstore-password", "store-password-in-test", secret: true).Resource);
    });

    public async ValueTask DisposeAsync()
    {
        if (App is not null)
        {
            await App.DisposeAsync();
        }
    }
}

public sealed class NativeInfrastructureTests(NativeInfrastructureFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TheDatabaseExistsAndAnswersThroughItsConnectionString()
    {
        var connectionString = await fixture.App.GetConnectionStringAsync("appdb", Ct);
        Assert.Matches("^Host=localhost;Port=\\d+;Username=postgres;Password=pg-password-in-test;Database=appdb$", connectionString);
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var command = dataSource.CreateCommand("SELECT current_database(), current_user, version()");
        await using var reader = await command.ExecuteReaderAsync(Ct);
        Assert.True(await reader.ReadAsync(Ct));
        Assert.Equal("appdb", reader.GetString(0));
        Assert.Equal("postgres", reader.GetString(1));
        Assert.StartsWith("PostgreSQL 15", reader.GetString(2), StringComparison.Ordinal);
    }

    [Fact]
    public async Task PostgresRefusesAWrongPassword()
    {
        var wrong = new NpgsqlConnectionStringBuilder(await fixture.App.GetConnectionStringAsync("appdb", Ct)) { Password = "nope", Pooling = false };
        await using var connection = new NpgsqlConnection(wrong.ConnectionString);
        var error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync(Ct));
        Assert.Equal("28P01", error.SqlState); // invalid_password
    }

    [Fact]
    public void PostgresRunsAsItsOwnUserWhenTheAppHostIsRoot()
    {
        var pid = fixture.App.ProcessId("postgres");
        var uid = File.ReadAllLines($"/proc/{pid}/status").Single(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1];
        var command = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0')[0];
        // setpriv execs: the pid Aspire holds is the server itself, not a wrapper that would outlive a stop.
        Assert.EndsWith("/postgres", command, StringComparison.Ordinal);
        if (Environment.UserName == "root")
        {
            Assert.NotEqual("0", uid);
        }
    }

    [Fact]
    public async Task PostgresLogsAreOrdinaryConsoleLinesNotErrors()
    {
        // Postgres logs everything to stderr; shown as is, every routine line would be an error in the dashboard.
        await Waits.UntilAsync(() => fixture.App.Logs("postgres", 500).Contains("database system is ready to accept connections", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), "postgres' start-up line in its console", Ct);
        var logs = fixture.App.Logs("postgres", 500);
        Assert.DoesNotContain(logs.Split('\n'), l => l.Contains("| " + PlatformApp.StderrMark, StringComparison.Ordinal) && l.Contains("LOG:", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RedisNeedsItsPasswordWhichIsNotOnItsCommandLine()
    {
        var connectionString = await fixture.App.GetConnectionStringAsync("redis", Ct);
        Assert.Matches("^localhost:\\d+,password=redis-password-in-test$", connectionString);
        using var redis = await ConnectionMultiplexer.ConnectAsync(connectionString + ",allowAdmin=true");
        var key = $"hosting-test:{Guid.NewGuid():N}";
        await redis.GetDatabase().StringSetAsync(key, "v");
        Assert.Equal("v", (string?)await redis.GetDatabase().StringGetAsync(key));

        // The append-only file is on: what the usage pipeline's durability relies on.
        var config = await redis.GetServers()[0].ConfigGetAsync("appendonly");
        Assert.Equal("yes", config.Single().Value);

        using var anonymous = await ConnectionMultiplexer.ConnectAsync(connectionString.Split(',')[0] + ",abortConnect=false,connectTimeout=1000");
        await Assert.ThrowsAnyAsync<RedisException>(() => anonymous.GetDatabase().StringGetAsync(key));

        var commandLine = File.ReadAllText($"/proc/{fixture.App.ProcessId("redis")}/cmdline");
        Assert.DoesNotContain(NativeInfrastructureFixture.RedisPassword, commandLine, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheObjectStoreKeepsBytesIdenticalAndRefusesUnknownKeys()
    {
        var connection = ObjectStoreConnection.Parse(await fixture.App.GetConnectionStringAsync("objectstore", Ct));
        using var s3 = S3ObjectStore.CreateClient(connection);
        var bucket = $"hosting-{Guid.NewGuid():N}"[..20];
        await s3.PutBucketAsync(bucket, Ct);
        var payload = RandomNumberGenerator.GetBytes(256 * 1024 + 3);
        await s3.PutObjectAsync(new PutObjectRequest { BucketName = bucket, Key = "k", InputStream = new MemoryStream(payload), UseChunkEncoding = false }, Ct);
        using var get = await s3.GetObjectAsync(bucket, "k", Ct);
        using var copy = new MemoryStream();
        await get.ResponseStream.CopyToAsync(copy, Ct);
        Assert.Equal(SHA256.HashData(payload), SHA256.HashData(copy.ToArray()));

        using var intruder = S3ObjectStore.CreateClient(connection with { AccessKey = "someone-else" });
        await Assert.ThrowsAnyAsync<Amazon.S3.AmazonS3Exception>(() => intruder.GetObjectAsync(bucket, "k", Ct));
    }

    [Fact]
    public async Task TheDatabaseFollowsItsServerThroughAStopAndAStart()
    {
        await fixture.App.StopAsync("postgres", cancellationToken: Ct);
        try
        {
            // Aspire hands state down to children of containers only: the native database mirrors its server itself.
            await fixture.App.WaitForAsync("appdb", "not running", s => s.State?.Text != KnownResourceStates.Running, cancellationToken: Ct);
        }
        finally
        {
            await fixture.App.StartAsync("postgres", cancellationToken: Ct);
        }

        await fixture.App.WaitForHealthyAsync("appdb", cancellationToken: Ct);
        Assert.Equal(HealthStatus.Healthy, fixture.App.Instances("appdb").Single().Snapshot.HealthStatus);
        await using var dataSource = NpgsqlDataSource.Create(await fixture.App.GetConnectionStringAsync("appdb", Ct));
        await using var command = dataSource.CreateCommand("SELECT 1");
        Assert.Equal(1, await command.ExecuteScalarAsync(Ct));
    }
}
