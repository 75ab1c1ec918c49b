using Platform.Hosting;
using Platform.Hosting.Testing;

[assembly: AssemblyFixture(typeof(Platform.Integration.Tests.PlatformFixture))]

namespace Platform.Integration.Tests;

/// <summary>One running platform shared by the tests of this assembly (starting it costs seconds).</summary>
public sealed class PlatformFixture : IAsyncLifetime
{
    private IDistributedApplicationTestingBuilder? _builder;

    public DistributedApplication App { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        _builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Platform_AppHost>();
        App = await _builder.BuildAsync();
        await App.StartAsync();
        await App.WaitForAllHealthyAsync(TimeSpan.FromSeconds(120));
    }

    public async ValueTask DisposeAsync()
    {
        if (_builder is not null)
        {
            await _builder.DisposeAsync();
        }
    }
}
