using System.Net.Http.Headers;
using Npgsql;
using Platform.Hosting;
using Platform.Hosting.ApplicationModel;
using Platform.Hosting.Testing;
using Platform.ObjectStore;

[assembly: AssemblyFixture(typeof(Platform.Registry.Tests.PlatformFixture))]

namespace Platform.Registry.Tests;

/// <summary>One running platform for the assembly, with an admin client and direct Postgres / object store access for checks.</summary>
public sealed class PlatformFixture : IAsyncLifetime
{
    private IDistributedApplicationTestingBuilder? _builder;

    /// <summary>The workers' registry reconcile interval in these tests.</summary>
    public static readonly TimeSpan ReconcileInterval = TimeSpan.FromSeconds(15);

    public DistributedApplication App { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    public string AdminKey { get; private set; } = null!;

    public NpgsqlDataSource Database { get; private set; } = null!;

    public Amazon.S3.IAmazonS3 ObjectStore { get; private set; } = null!;

    /// <summary>The platform's Redis (usage buffer, spending counters, change notifications).</summary>
    public string RedisConnectionString { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        _builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Platform_AppHost>();
        // A reconcile interval longer than any pub/sub assertion, so a test that passes within it proves the
        // notification path, and a test that bypasses notifications proves the reconcile.
        var worker = _builder.Resources.Find("model-worker")!;
        _builder.CreateResourceBuilder((ProjectResource)worker).WithEnvironment("ModelRegistry__ReconcileInterval", ReconcileInterval.ToString());
        App = await _builder.BuildAsync();
        await App.StartAsync();
        await Task.WhenAll(
            App.WaitForResourceHealthyAsync("admin-api", TimeSpan.FromSeconds(180)),
            App.WaitForResourceHealthyAsync("model-worker", TimeSpan.FromSeconds(180)));
        AdminKey = ((ParameterResource)App.Resources.Find("admin-api-key")!).Value;
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
        if (_builder is not null)
        {
            await _builder.DisposeAsync();
        }
    }
}
