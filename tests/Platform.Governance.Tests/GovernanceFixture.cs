using Aspire.Hosting;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using StackExchange.Redis;
using Platform.OnnxModels;
using Platform.Tenancy;
using Platform.TestSupport;

[assembly: AssemblyFixture(typeof(Platform.Governance.Tests.GovernanceFixture))]

// The tests kill InferenceApi replicas and restart Postgres: they must not overlap.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Platform.Governance.Tests;

/// <summary>The whole platform with two InferenceApi replicas (limits must hold across replicas) and one served model.</summary>
public sealed class GovernanceFixture : IAsyncLifetime
{
    public const string AdminKey = "governance-tests-admin-key";
    public const string Model = "governed-mlp";
    public const string OtherModel = "governed-mlp-b";

    public PlatformApp App { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    public NpgsqlDataSource Db { get; private set; } = null!;

    public IConnectionMultiplexer Redis { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        App = await PlatformApp.StartAsync([$"--Parameters:admin-api-key={AdminKey}"], builder => builder.Project("inference-api").WithReplicas(2));
        Admin = App.CreateHttpClient("admin-api");
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        Db = NpgsqlDataSource.Create(await App.GetConnectionStringAsync("platformdb"));
        Redis = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("redis"), Platform.Redis.RedisServiceCollectionExtensions.Configure);

        foreach (var (name, seed) in new[] { (Model, 31UL), (OtherModel, 32UL) })
        {
            using var content = new ByteArrayContent(ModelCatalog.Generate("mlp", new ModelRequest { Seed = seed }).Bytes);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            using var uploaded = await Admin.PostAsync($"/api/models/{name}/versions?activate=true", content);
            var body = await uploaded.Content.ReadAsStringAsync();
            Assert.True(uploaded.IsSuccessStatusCode, $"upload {name}: {(int)uploaded.StatusCode} {body}");
        }
    }

    /// <summary>An InferenceApi client for one replica.</summary>
    public HttpClient Inference(int replica = 0) => App.CreateReplicaHttpClient("inference-api", replica);

    /// <summary>A JSON inference request body for the test MLP (16 features, batch 1).</summary>
    public static JsonContent InferBody(string? id = null, int seed = 0) =>
        JsonContent.Create(new
        {
            id,
            inputs = new[] { new { name = "input", shape = new[] { 1, 16 }, datatype = "FP32", data = Enumerable.Range(0, 16).Select(i => (float)((i + seed) % 7) / 7f).ToArray() } },
        }, options: new JsonSerializerOptions(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull });

    /// <summary>The last console lines of a resource, for failure messages.</summary>
    public string Logs(string resource, int lines = 40) => App.Logs(resource, lines);

    /// <summary>Waits until <paramref name="client"/> (carrying a key allowed <paramref name="model"/>) gets a 200 from it.</summary>
    public static Task WaitServedAsync(HttpClient client, string model, CancellationToken ct) =>
        Waits.UntilAsync(async () =>
        {
            using var response = await client.PostAsync($"/v2/models/{model}/infer", InferBody(), ct);
            return (response.IsSuccessStatusCode, Answer: $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
        }, r => r.IsSuccessStatusCode, TimeSpan.FromSeconds(60), $"{model} served", ct);

    /// <summary>Usage records of a tenant in Postgres, by status.</summary>
    public async Task<IReadOnlyList<(string? RequestId, int Status, decimal Cost)>> UsageAsync(Guid tenant, CancellationToken ct)
    {
        await using var command = Db.CreateCommand("SELECT request_id, status, cost FROM usage_records WHERE tenant_id = $1");
        command.Parameters.AddWithValue(tenant);
        await using var reader = await command.ExecuteReaderAsync(ct);
        var rows = new List<(string?, int, decimal)>();
        while (await reader.ReadAsync(ct))
        {
            rows.Add((reader.IsDBNull(0) ? null : reader.GetString(0), reader.GetInt32(1), reader.GetDecimal(2)));
        }

        return rows;
    }

    /// <summary>Waits until the usage buffer in Redis is empty (every record is in Postgres) and returns the tenant's records.</summary>
    public async Task<IReadOnlyList<(string? RequestId, int Status, decimal Cost)>> SettledUsageAsync(Guid tenant, int expectedAtLeast, CancellationToken ct)
    {
        var buffer = new UsageBuffer(Redis);
        IReadOnlyList<(string?, int, decimal)> rows = [];
        // The probe answers what is still pending (null once settled); the rows are kept aside for the caller.
        await Waits.UntilAsync<string?>(async () =>
        {
            try
            {
                rows = await UsageAsync(tenant, ct);
            }
            catch (NpgsqlException ex)
            {
                // Postgres restarting (one test restarts it): pooled connections die with it.
                Db.Clear();
                return ex.Message;
            }

            long backlog;
            try
            {
                backlog = await buffer.BacklogAsync(ct);
            }
            catch (StackExchange.Redis.RedisConnectionException ex)
            {
                // Redis restarting (one test restarts it): this connection reconnects on its own.
                return ex.Message;
            }

            return rows.Count >= expectedAtLeast && backlog == 0 ? null : $"{rows.Count} records in Postgres, backlog {backlog}";
        }, pending => pending is null, TimeSpan.FromSeconds(60), $"usage of {tenant} settled", ct);
        return rows;
    }

    /// <summary>Once the tenant's usage has settled (<see cref="SettledUsageAsync"/>): how many records each request id has.</summary>
    public async Task<IReadOnlyDictionary<string, int>> SettledRecordsPerRequestAsync(Guid tenant, int expectedAtLeast, CancellationToken ct) =>
        (await SettledUsageAsync(tenant, expectedAtLeast, ct))
            .Where(r => r.RequestId is not null).GroupBy(r => r.RequestId!).ToDictionary(g => g.Key, g => g.Count());

    public async ValueTask DisposeAsync()
    {
        Admin?.Dispose();
        if (Db is not null)
        {
            await Db.DisposeAsync();
        }

        if (Redis is not null)
        {
            await Redis.CloseAsync();
            Redis.Dispose();
        }

        if (App is not null)
        {
            await App.DisposeAsync();
        }
    }
}
