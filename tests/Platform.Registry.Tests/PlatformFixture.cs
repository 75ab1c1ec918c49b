using System.Net.Http.Headers;
using Aspire.Hosting;
using Npgsql;
using Platform.ObjectStore;
using Platform.TestSupport;

[assembly: AssemblyFixture(typeof(Platform.Registry.Tests.PlatformFixture))]

namespace Platform.Registry.Tests;

/// <summary>One running platform for the assembly, with an admin client and direct Postgres / object store access for checks.</summary>
public sealed class PlatformFixture : IAsyncLifetime
{
    /// <summary>The workers' registry reconcile interval in these tests.</summary>
    public static readonly TimeSpan ReconcileInterval = TimeSpan.FromSeconds(15);

    public PlatformApp App { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    public string AdminKey { get; } = "registry-tests-admin-key";

    public NpgsqlDataSource Database { get; private set; } = null!;

    public Amazon.S3.IAmazonS3 ObjectStore { get; private set; } = null!;

    /// <summary>The platform's Redis (usage buffer, spending counters, change notifications).</summary>
    public string RedisConnectionString { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        // A reconcile interval longer than any pub/sub assertion, so a test that passes within it proves the
        // notification path, and a test that bypasses notifications proves the reconcile.
        App = await PlatformApp.StartAsync([$"--Parameters:admin-api-key={AdminKey}"], builder =>
            builder.Project("model-worker").WithEnvironment("ModelRegistry__ReconcileInterval", ReconcileInterval.ToString()));
        Admin = App.CreateHttpClient("admin-api");
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        Database = NpgsqlDataSource.Create((await App.GetConnectionStringAsync("platformdb"))!);
        RedisConnectionString = (await App.GetConnectionStringAsync("redis"))!;
        ObjectStore = S3ObjectStore.CreateClient(ObjectStoreConnection.Parse((await App.GetConnectionStringAsync("objectstore"))!));
    }

    public async ValueTask DisposeAsync()
    {
        Admin?.Dispose();
        ObjectStore?.Dispose();
        if (Database is not null)
        {
            await Database.DisposeAsync();
        }
        if (App is not null)
        {
            await App.DisposeAsync();
        }
    }
}
