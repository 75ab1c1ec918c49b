using Platform.TestSupport;

[assembly: AssemblyFixture(typeof(Platform.Integration.Tests.PlatformFixture))]

namespace Platform.Integration.Tests;

/// <summary>One running platform shared by the tests of this assembly (starting it costs seconds).</summary>
public sealed class PlatformFixture : IAsyncLifetime
{
    public const string AdminKey = "integration-tests-admin-key";

    public PlatformApp App { get; private set; } = null!;

    public async ValueTask InitializeAsync() => App = await PlatformApp.StartAsync([$"--Parameters:admin-api-key={AdminKey}"]);

    public async ValueTask DisposeAsync()
    {
        if (App is not null)
        {
            await App.DisposeAsync();
        }
    }
}
