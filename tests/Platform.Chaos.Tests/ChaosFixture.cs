using System.Net.Http.Headers;
using Aspire.Hosting;
using Npgsql;
using Platform.OnnxModels;
using Platform.TestSupport;
using StackExchange.Redis;

[assembly: AssemblyFixture(typeof(Platform.Chaos.Tests.ChaosFixture))]

// Each test kills a server every service depends on: they must not overlap.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Platform.Chaos.Tests;

/// <summary>The whole platform (one InferenceApi, two workers) with one served model, for tests that kill its servers.</summary>
public sealed class ChaosFixture : IAsyncLifetime
{
    public const string AdminKey = "chaos-tests-admin-key";
    public const string Model = "chaos-mlp";

    public PlatformApp App { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    public NpgsqlDataSource Db { get; private set; } = null!;

    public IConnectionMultiplexer Redis { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        // Durable servers, as in production (Postgres fsync + synchronous_commit, Redis appendfsync everysec): the tests
        // measure what a crash costs there, not what the other suites' fast throw-away settings would lose.
        App = await PlatformApp.StartAsync([$"--Parameters:admin-api-key={AdminKey}", "--Platform:DurableData=true"]);
        Admin = App.CreateHttpClient("admin-api");
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        Db = NpgsqlDataSource.Create(await App.GetConnectionStringAsync("platformdb"));
        Redis = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("redis"), Platform.Redis.RedisServiceCollectionExtensions.Configure);

        using var content = new ByteArrayContent(ModelCatalog.Generate("mlp", new ModelRequest { Seed = 77 }).Bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var uploaded = await Admin.PostAsync($"/api/models/{Model}/versions?activate=true", content);
        Assert.True(uploaded.IsSuccessStatusCode, $"upload {Model}: {(int)uploaded.StatusCode} {await uploaded.Content.ReadAsStringAsync()}");
    }

    public async ValueTask DisposeAsync()
    {
        Admin?.Dispose();
        Redis?.Dispose();
        if (Db is not null)
        {
            await Db.DisposeAsync();
        }

        if (App is not null)
        {
            await App.DisposeAsync();
        }
    }
}
