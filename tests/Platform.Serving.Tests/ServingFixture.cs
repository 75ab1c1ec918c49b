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

    // The models that tests share (deployed by whichever test comes first), owned here so every test class sees one set.
    private readonly SemaphoreSlim _deployLock = new(1, 1);
    private readonly HashSet<string> _deployed = [];

    public async ValueTask InitializeAsync()
    {
        App = await PlatformApp.StartAsync([$"--Parameters:admin-api-key={AdminKey}"]);
        var admin = App.CreateHttpClient("admin-api");
        admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminKey);
        // Every inference needs a tenant key; this tenant may use every model and is not rate limited in practice.
        var tenant = await PlatformTenants.CreateAsync(admin, "serving-tests");
        Client = new ServingClient(admin, App.CreateHttpClient("inference-api").WithApiKey(tenant.Key));
    }

    /// <summary>
    /// Runs <paramref name="deploy"/> for the first test that asks for <paramref name="name"/>, one deployment at a time;
    /// later callers find it done. The name counts as deployed from the first attempt on: a failed deployment is not retried.
    /// </summary>
    public async Task DeployOnceAsync(string name, Func<Task> deploy, CancellationToken cancellationToken)
    {
        await _deployLock.WaitAsync(cancellationToken);
        try
        {
            if (_deployed.Add(name))
            {
                await deploy();
            }
        }
        finally
        {
            _deployLock.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (App is not null)
        {
            await App.DisposeAsync();
        }

        Ort.Dispose();
        _deployLock.Dispose();
    }
}
