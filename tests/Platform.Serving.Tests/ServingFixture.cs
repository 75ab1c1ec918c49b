using Platform.Hosting;
using Platform.Hosting.Testing;
using Platform.OnnxRuntime;
using Platform.TestSupport;

[assembly: AssemblyFixture(typeof(Platform.Serving.Tests.ServingFixture))]

namespace Platform.Serving.Tests;

/// <summary>One running platform for the assembly, plus an in-process ONNX Runtime for reference answers.</summary>
public sealed class ServingFixture : IAsyncLifetime
{
    public const string AdminKey = "serving-tests-admin-key";

    private IDistributedApplicationTestingBuilder? _builder;

    public DistributedApplication App { get; private set; } = null!;

    public OrtEnvironment Ort { get; } = new();

    public ServingClient Client { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        _builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Platform_AppHost>([$"--Parameters:admin-api-key={AdminKey}"]);
        App = await _builder.BuildAsync();
        await App.StartAsync();
        await App.WaitForAllHealthyAsync(TimeSpan.FromSeconds(180));
        var admin = App.CreateHttpClient("admin-api");
        admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminKey);
        // Every inference needs a tenant key; this tenant may use every model and is not rate limited in practice.
        var tenant = await PlatformTenants.CreateAsync(admin, "serving-tests");
        Client = new ServingClient(admin, App.CreateHttpClient("inference-api").WithApiKey(tenant.Key));
    }

    public async ValueTask DisposeAsync()
    {
        if (_builder is not null)
        {
            await _builder.DisposeAsync();
        }

        Ort.Dispose();
    }
}
