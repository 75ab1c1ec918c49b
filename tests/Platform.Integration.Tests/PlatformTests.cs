using System.Security.Cryptography;
using System.Text.Json;
using Amazon.S3.Model;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using Platform.Hosting.ApplicationModel;
using Platform.Hosting.Testing;
using Platform.ObjectStore;
using StackExchange.Redis;

namespace Platform.Integration.Tests;

public sealed class PlatformTests(PlatformFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public void EveryResourceIsRunningAndHealthy()
    {
        var snapshots = fixture.App.ResourceNotifications.GetAll();
        string[] expected = ["postgres", "platformdb", "redis", "objectstore", "admin-api", "model-worker", "context-enrichment", "inference-api"];
        Assert.Equal(expected.Order(), snapshots.Where(s => s.Type != "Parameter").Select(s => s.Name).Order());
        Assert.All(snapshots, s =>
        {
            Assert.True(s.State == KnownResourceStates.Running, $"{s.Name} is {s.State}");
            Assert.True(s.Health == HealthStatus.Healthy, $"{s.Name} is {s.Health}");
        });
    }

    [Fact]
    public void ModelWorkerRunsTwoReplicasWithTheirOwnPortsAndInstanceIds()
    {
        var worker = fixture.App.ResourceNotifications.TryGet("model-worker")!;
        Assert.Equal(2, worker.Replicas.Count);
        Assert.Equal(["model-worker-0", "model-worker-1"], worker.Replicas.Select(r => r.InstanceId));
        // Each replica has its own ports for both endpoints: http (HTTP/1.1) and grpc (HTTP/2, the inference hop).
        Assert.All(worker.Replicas, r => Assert.Equal(["grpc", "http"], r.Endpoints.Select(e => e.Name).Order()));
        Assert.Equal(4, worker.Replicas.SelectMany(r => r.Endpoints.Select(e => e.Url)).Distinct().Count());
        Assert.Equal(2, worker.Pids.Distinct().Count());
    }

    [Theory]
    [InlineData("inference-api", new[] { "self", "postgres", "redis" })]
    [InlineData("admin-api", new[] { "self", "postgres", "redis", "objectstore" })]
    [InlineData("context-enrichment", new[] { "self", "postgres", "redis" })]
    [InlineData("model-worker", new[] { "self", "redis", "objectstore" })]
    public async Task EachServiceHealthListsItsDependencies(string service, string[] checks)
    {
        using var http = fixture.App.CreateHttpClient(service);
        using var response = await http.GetAsync("/health", Ct);
        var body = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.IsSuccessStatusCode, body);
        using var json = JsonDocument.Parse(body);
        var reported = json.RootElement.GetProperty("checks").EnumerateArray()
            .ToDictionary(e => e.GetProperty("name").GetString()!, e => e.GetProperty("status").GetString());
        foreach (var check in checks)
        {
            Assert.True(reported.TryGetValue(check, out var status), $"{service} /health lacks '{check}': {body}");
            Assert.Equal("Healthy", status);
        }

        using var alive = await http.GetAsync("/alive", Ct);
        Assert.True(alive.IsSuccessStatusCode);
    }

    [Fact]
    public void ServicesGetAspireEnvironmentVariables()
    {
        var env = fixture.App.ResourceNotifications.TryGet("inference-api")!.Environment.ToDictionary(e => e.Name);
        foreach (var name in new[]
                 {
                     "ConnectionStrings__platformdb", "ConnectionStrings__redis", "services__admin-api__http__0",
                     "services__model-worker__http__0", "services__model-worker__http__1", "services__context-enrichment__http__0",
                     "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "ASPNETCORE_URLS",
                 })
        {
            Assert.True(env.ContainsKey(name), $"inference-api lacks {name}");
        }

        Assert.True(env["ConnectionStrings__redis"].IsSecret, "a connection string with a password is masked");
        Assert.Equal("****", env["ConnectionStrings__redis"].Value);
        Assert.Equal("inference-api", env["OTEL_SERVICE_NAME"].Value);
        Assert.Equal("service.instance.id=inference-api-0", env["OTEL_RESOURCE_ATTRIBUTES"].Value);
        Assert.StartsWith("http://127.0.0.1:", env["services__model-worker__http__1"].Value, StringComparison.Ordinal);
    }

    [Fact]
    public void RunModeSharesTheMachinesCoresAmongWorkerReplicasAndPacksRequests()
    {
        // Every replica runs on this machine: each gets its share of the cores for ONNX Runtime, and InferenceApi packs
        // requests onto one replica before spreading (the manifest tests check that publishing leaves both out).
        var expectedThreads = Math.Max(1, Environment.ProcessorCount / 2).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var worker = fixture.App.ResourceNotifications.TryGet("model-worker")!;
        Assert.Equal(2, worker.Replicas.Count);
        Assert.Equal(expectedThreads, worker.Environment.Single(e => e.Name == "ModelWorker__IntraOpNumThreads").Value);

        var api = fixture.App.ResourceNotifications.TryGet("inference-api")!.Environment.ToDictionary(e => e.Name);
        Assert.Equal("16", api["WorkerRouting__PackBelow"].Value);
    }

    [Fact]
    public async Task PostgresIsReachedThroughTheInjectedConnectionString()
    {
        var cs = await fixture.App.GetConnectionStringAsync("platformdb", Ct);
        Assert.Matches("^Host=127.0.0.1;Port=\\d+;Username=postgres;Password=[A-Za-z0-9]{22,};Database=platformdb$", cs);
        await using var dataSource = NpgsqlDataSource.Create(cs!);
        var table = $"it_{Guid.NewGuid():N}";
        await using (var create = dataSource.CreateCommand($"CREATE TABLE {table} (id int primary key, note text)"))
        {
            await create.ExecuteNonQueryAsync(Ct);
        }

        await using (var insert = dataSource.CreateCommand($"INSERT INTO {table} VALUES (1, 'written by a test')"))
        {
            await insert.ExecuteNonQueryAsync(Ct);
        }

        await using var select = dataSource.CreateCommand($"SELECT note FROM {table} WHERE id = 1");
        Assert.Equal("written by a test", await select.ExecuteScalarAsync(Ct));
        await using var db = dataSource.CreateCommand("SELECT current_database()");
        Assert.Equal("platformdb", await db.ExecuteScalarAsync(Ct));
    }

    [Fact]
    public async Task RedisIsReachedThroughTheInjectedConnectionString()
    {
        var cs = await fixture.App.GetConnectionStringAsync("redis", Ct);
        Assert.Matches("^127.0.0.1:\\d+,password=[A-Za-z0-9]{22,}$", cs);
        using var redis = await ConnectionMultiplexer.ConnectAsync(cs!);
        var key = $"it:{Guid.NewGuid():N}";
        await redis.GetDatabase().StringSetAsync(key, "value-from-test");
        Assert.Equal("value-from-test", (string?)await redis.GetDatabase().StringGetAsync(key));

        // Without the password the server refuses commands.
        var noPassword = cs!.Split(',')[0] + ",abortConnect=false,connectTimeout=1000";
        using var anonymous = await ConnectionMultiplexer.ConnectAsync(noPassword);
        await Assert.ThrowsAnyAsync<Exception>(() => anonymous.GetDatabase().StringGetAsync(key));
    }

    [Fact]
    public async Task ObjectStoreRoundTripsBytesIdentically()
    {
        var cs = await fixture.App.GetConnectionStringAsync("objectstore", Ct);
        Assert.Matches("^Endpoint=http://127.0.0.1:\\d+;AccessKey=\\w+;SecretKey=[A-Za-z0-9]{22,}$", cs);
        using var s3 = S3ObjectStore.CreateClient(ObjectStoreConnection.Parse(cs!));
        var bucket = $"it-{Guid.NewGuid():N}"[..20];
        await s3.PutBucketAsync(bucket, Ct);
        var payload = RandomNumberGenerator.GetBytes(1024 * 1024 + 17);
        await s3.PutObjectAsync(new PutObjectRequest
        {
            BucketName = bucket,
            Key = "blob.bin",
            InputStream = new MemoryStream(payload),
            UseChunkEncoding = false,
        }, Ct);
        using var get = await s3.GetObjectAsync(bucket, "blob.bin", Ct);
        using var copy = new MemoryStream();
        await get.ResponseStream.CopyToAsync(copy, Ct);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(payload)), Convert.ToHexString(SHA256.HashData(copy.ToArray())));

        // A listing cut short (continuation token) works: s3rver needs Node's legacy OpenSSL provider for it.
        await s3.PutObjectAsync(new PutObjectRequest { BucketName = bucket, Key = "second.bin", InputStream = new MemoryStream([1, 2, 3]), UseChunkEncoding = false }, Ct);
        var page = await s3.ListObjectsV2Async(new ListObjectsV2Request { BucketName = bucket, MaxKeys = 1 }, Ct);
        Assert.Single(page.S3Objects);
        var rest = await s3.ListObjectsV2Async(new ListObjectsV2Request { BucketName = bucket, MaxKeys = 1, ContinuationToken = page.NextContinuationToken }, Ct);
        Assert.Single(rest.S3Objects);
        Assert.NotEqual(page.S3Objects[0].Key, rest.S3Objects[0].Key);

        // An unknown access key is refused. (s3rver, the local stand-in, checks the key but not SigV4
        // signatures; MinIO in Kubernetes checks both.)
        var wrong = ObjectStoreConnection.Parse(cs!) with { AccessKey = "someone-else" };
        using var intruder = S3ObjectStore.CreateClient(wrong);
        await Assert.ThrowsAnyAsync<Amazon.S3.AmazonS3Exception>(() => intruder.GetObjectAsync(bucket, "blob.bin", Ct));
    }
}
