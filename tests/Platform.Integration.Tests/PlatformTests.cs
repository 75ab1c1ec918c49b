using System.Security.Cryptography;
using System.Text.Json;
using Amazon.S3.Model;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using Aspire.Hosting.ApplicationModel;
using Platform.ObjectStore;
using StackExchange.Redis;

namespace Platform.Integration.Tests;

public sealed class PlatformTests(PlatformFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public void EveryResourceIsRunningAndHealthy()
    {
        var instances = fixture.App.AllInstances();
        string[] expected = ["postgres", "platformdb", "redis", "objectstore", "admin-api", "model-worker", "context-enrichment", "inference-api"];
        Assert.Equal(expected.Order(), instances.Select(i => i.Resource.Name).Distinct().Order());
        Assert.All(instances, i =>
        {
            Assert.True(i.Snapshot.State?.Text == KnownResourceStates.Running, $"{i.ResourceId} is {i.Snapshot.State?.Text}");
            Assert.True(i.Snapshot.HealthStatus == HealthStatus.Healthy, $"{i.ResourceId} is {i.Snapshot.HealthStatus}");
        });
    }

    [Fact]
    public async Task ModelWorkerRunsTwoReplicasThatAnnounceTheirOwnAddresses()
    {
        var replicas = fixture.App.Instances("model-worker");
        Assert.Equal(2, replicas.Count);
        var addresses = Enumerable.Range(0, 2).Select(i => fixture.App.ReplicaAddress("model-worker", i)).ToArray();
        Assert.Equal(2, addresses.Distinct().Count());
        Assert.Equal(2, fixture.App.ProcessIds("model-worker").Distinct().Count());

        // Aspire's proxy would hide the replicas behind one port: each announces its own address for InferenceApi's balancing.
        using var redis = await ConnectionMultiplexer.ConnectAsync(await fixture.App.GetConnectionStringAsync("redis", Ct));
        var announced = (await redis.GetDatabase().HashGetAllAsync("platform:workers:endpoints"))
            .Select(e => JsonDocument.Parse(e.Value.ToString()).RootElement)
            .ToDictionary(e => "model-worker-" + e.GetProperty("id").GetString(), e => new Uri(e.GetProperty("address").GetString()!));
        for (var i = 0; i < 2; i++)
        {
            Assert.True(announced.TryGetValue(fixture.App.InstanceId("model-worker", i), out var address),
                $"{fixture.App.InstanceId("model-worker", i)} is not announced: {string.Join(", ", announced.Keys)}");
            Assert.Equal(addresses[i].Port, address.Port);
        }

        // Each replica has its own port for the gRPC endpoint too (HTTP/2, the inference hop), announced beside the other.
        var grpc = Enumerable.Range(0, 2).Select(i => fixture.App.ReplicaAddress("model-worker", i, "grpc")).ToArray();
        Assert.Equal(4, addresses.Concat(grpc).Select(a => a.Port).Distinct().Count());
        var announcedGrpc = (await redis.GetDatabase().HashGetAllAsync("platform:workers:endpoints"))
            .Select(e => JsonDocument.Parse(e.Value.ToString()).RootElement)
            .ToDictionary(e => "model-worker-" + e.GetProperty("id").GetString(), e => new Uri(e.GetProperty("grpc").GetString()!));
        Assert.All(Enumerable.Range(0, 2), i => Assert.Equal(grpc[i].Port, announcedGrpc[fixture.App.InstanceId("model-worker", i)].Port));
    }

    [Theory]
    [InlineData("inference-api", new[] { "self", "shutdown", "PostgreSql", "StackExchange.Redis" })]
    [InlineData("admin-api", new[] { "self", "shutdown", "PostgreSql", "StackExchange.Redis", "objectstore" })]
    [InlineData("context-enrichment", new[] { "self", "shutdown", "PostgreSql", "StackExchange.Redis" })]
    [InlineData("model-worker", new[] { "self", "shutdown", "StackExchange.Redis", "objectstore" })]
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
        var env = fixture.App.Environment("inference-api");
        foreach (var name in new[]
                 {
                     "ConnectionStrings__platformdb", "ConnectionStrings__redis", "services__admin-api__http__0",
                     "services__model-worker__http__0", "services__context-enrichment__http__0",
                     "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPORTER_OTLP_ENDPOINT", "ASPNETCORE_URLS",
                 })
        {
            Assert.True(env.ContainsKey(name), $"inference-api lacks {name}");
        }

        Assert.Equal("inference-api", env["OTEL_SERVICE_NAME"]);
        Assert.StartsWith("service.instance.id=", env["OTEL_RESOURCE_ATTRIBUTES"], StringComparison.Ordinal);
        // Connection strings only: no per-property variables that would repeat the passwords.
        Assert.DoesNotContain(env.Keys, k => k.StartsWith("PLATFORMDB_", StringComparison.Ordinal) || k.StartsWith("REDIS_", StringComparison.Ordinal));
    }

    [Fact]
    public void RunModePacksRequestsOntoOneWorkerReplicaThatHasEveryCore()
    {
        // Every replica runs on this machine: InferenceApi packs requests onto one replica until a full batch is in flight
        // and that replica's ONNX Runtime pool has a thread per core (the manifest tests check that publishing leaves both out).
        var expectedThreads = System.Environment.ProcessorCount.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(2, fixture.App.Instances("model-worker").Count);
        Assert.Equal(expectedThreads, fixture.App.Environment("model-worker")["ModelWorker__IntraOpNumThreads"]);
        Assert.Equal("64", fixture.App.Environment("inference-api")["WorkerRouting__PackBelow"]);
    }

    [Theory]
    [InlineData("admin-api", "Platform.AdminApi")]
    [InlineData("inference-api", "Platform.InferenceApi")]
    [InlineData("context-enrichment", "Platform.ContextEnrichment")]
    [InlineData("model-worker", "Platform.ModelWorker")]
    public void ServicesRunFromTheirBuildOutputSoTheirPidIsTheService(string service, string executable)
    {
        // Aspire's default `dotnet run` would make the reported pid the SDK's wrapper, whose SIGKILL orphans the service.
        foreach (var pid in fixture.App.ProcessIds(service))
        {
            var command = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0')[0];
            Assert.EndsWith("/" + executable, command, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task PostgresIsReachedThroughTheInjectedConnectionString()
    {
        var cs = await fixture.App.GetConnectionStringAsync("platformdb", Ct);
        Assert.Matches("^Host=localhost;Port=\\d+;Username=postgres;Password=[A-Za-z0-9]{22,};Database=platformdb$", cs);
        await using var dataSource = NpgsqlDataSource.Create(cs);
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
        Assert.Matches("^localhost:\\d+,password=[A-Za-z0-9]{22,}$", cs);
        using var redis = await ConnectionMultiplexer.ConnectAsync(cs);
        var key = $"it:{Guid.NewGuid():N}";
        await redis.GetDatabase().StringSetAsync(key, "value-from-test");
        Assert.Equal("value-from-test", (string?)await redis.GetDatabase().StringGetAsync(key));

        // Without the password the server refuses commands.
        var noPassword = cs.Split(',')[0] + ",abortConnect=false,connectTimeout=1000";
        using var anonymous = await ConnectionMultiplexer.ConnectAsync(noPassword);
        await Assert.ThrowsAnyAsync<Exception>(() => anonymous.GetDatabase().StringGetAsync(key));
    }

    [Fact]
    public async Task ObjectStoreRoundTripsBytesIdentically()
    {
        var cs = await fixture.App.GetConnectionStringAsync("objectstore", Ct);
        Assert.Matches("^Endpoint=http://localhost:\\d+;AccessKey=\\w+;SecretKey=[A-Za-z0-9]{22,}$", cs);
        using var s3 = S3ObjectStore.CreateClient(ObjectStoreConnection.Parse(cs));
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
        var wrong = ObjectStoreConnection.Parse(cs) with { AccessKey = "someone-else" };
        using var intruder = S3ObjectStore.CreateClient(wrong);
        await Assert.ThrowsAnyAsync<Amazon.S3.AmazonS3Exception>(() => intruder.GetObjectAsync(bucket, "blob.bin", Ct));
    }
}
