using Platform.OnnxRuntime;
using Platform.TestSupport;

[assembly: AssemblyFixture(typeof(Platform.Serving.Tests.ServingFixture))]

namespace Platform.Serving.Tests;

/// <summary>One running platform for the assembly, plus an in-process ONNX Runtime for reference answers.</summary>
public sealed class ServingFixture : IAsyncLifetime
{
    public const string AdminKey = "serving-tests-admin-key";

    public PlatformApp App { get; private set; } = null!;

    public OrtEnvironment Ort { get; } = new();

    public ServingClient Client { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        App = await PlatformApp.StartAsync([$"--Parameters:admin-api-key={AdminKey}"]);
        var admin = App.CreateHttpClient("admin-api");
        admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminKey);
        // Every inference needs a tenant key; this tenant may use every model and is not rate limited in practice.
        var tenant = await PlatformTenants.CreateAsync(admin, "serving-tests");
        Client = new ServingClient(admin, App.CreateHttpClient("inference-api").WithApiKey(tenant.Key));
    }

    public async ValueTask DisposeAsync()
    {
        if (App is not null)
        {
            await App.DisposeAsync();
        }

        Ort.Dispose();
    }
}
