using System.Diagnostics;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Platform.Hosting.ApplicationModel;

namespace Platform.Hosting.Testing;

/// <summary>
/// Runs an AppHost's <c>Program</c> up to <c>Build()</c> and hands its builder to the test
/// (Aspire's <c>DistributedApplicationTestingBuilder</c>): random ports, no dashboard, data in
/// temporary directories; everything else exactly as the AppHost composes it.
/// </summary>
public static class DistributedApplicationTestingBuilder
{
    /// <summary>Default time allowed for the AppHost's Program to reach <c>Build()</c>.</summary>
    public static readonly TimeSpan CreateTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Creates a testing builder from the AppHost identified by its generated <c>Projects.X</c> class.</summary>
    public static Task<IDistributedApplicationTestingBuilder> CreateAsync<TEntryPoint>(CancellationToken cancellationToken = default)
        where TEntryPoint : IProjectMetadata, new() =>
        CreateAsync<TEntryPoint>([], cancellationToken);

    /// <summary>Creates a testing builder, passing <paramref name="args"/> to the AppHost.</summary>
    public static Task<IDistributedApplicationTestingBuilder> CreateAsync<TEntryPoint>(string[] args, CancellationToken cancellationToken = default)
        where TEntryPoint : IProjectMetadata, new()
    {
        var metadata = new TEntryPoint();
        var assemblyName = Path.GetFileNameWithoutExtension(metadata.ProjectPath);
        var assembly = Assembly.Load(new AssemblyName(assemblyName));
        return CreateAsync(assembly, args, cancellationToken);
    }

    /// <summary>Creates a testing builder from an AppHost assembly.</summary>
    public static async Task<IDistributedApplicationTestingBuilder> CreateAsync(Assembly appHost, string[] args, CancellationToken cancellationToken = default)
    {
        var entryPoint = appHost.EntryPoint ?? throw new ArgumentException($"{appHost.GetName().Name} has no entry point.", nameof(appHost));
        var runId = Guid.NewGuid().ToString("N");
        var stateDirectory = Path.Combine(Path.GetTempPath(), $"platform-test-{runId[..12]}");
        var captured = new TaskCompletionSource<DistributedApplicationBuilder>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscription = DiagnosticListener.AllListeners.Subscribe(new ListenerObserver(runId, appHost, stateDirectory, captured));

        var allArgs = args.Append($"--Platform:TestRun={runId}").ToArray();
        var thread = new Thread(() =>
        {
            try
            {
                var parameters = entryPoint.GetParameters();
                entryPoint.Invoke(null, parameters.Length == 0 ? null : [allArgs]);
                captured.TrySetException(new InvalidOperationException(
                    $"{appHost.GetName().Name}'s Program returned without calling DistributedApplicationBuilder.Build()."));
            }
            catch (TargetInvocationException ex) when (ex.InnerException is BuildInterceptedException)
            {
                // Expected: Build() was intercepted and the builder handed over.
            }
            catch (TargetInvocationException ex)
            {
                captured.TrySetException(ex.InnerException ?? ex);
            }
        })
        { IsBackground = true, Name = $"apphost-entrypoint-{runId[..8]}" };
        thread.Start();

        var builder = await captured.Task.WaitAsync(CreateTimeout, cancellationToken).ConfigureAwait(false);
        return new TestingBuilder(builder, stateDirectory);
    }

    private sealed class ListenerObserver(string runId, Assembly appHost, string stateDirectory,
        TaskCompletionSource<DistributedApplicationBuilder> captured) : IObserver<DiagnosticListener>, IObserver<KeyValuePair<string, object?>>
    {
        public void OnNext(DiagnosticListener value)
        {
            if (value.Name == "Platform.Hosting")
            {
                value.Subscribe(this);
            }
        }

        public void OnNext(KeyValuePair<string, object?> value)
        {
            switch (value.Key)
            {
                case DistributedApplicationBuilder.ConstructingEvent when value.Value is DistributedApplicationOptions options &&
                    options.Args.Contains($"--Platform:TestRun={runId}"):
                    options.AppHostAssembly = appHost;
                    options.DisableDashboard = true;
                    options.RandomizePorts = true;
                    options.DisablePersistence = true;
                    options.StateDirectory = stateDirectory;
                    options.PrintBanner = false;
                    break;
                case DistributedApplicationBuilder.BuildingEvent when value.Value is DistributedApplicationBuilder builder &&
                    builder.Configuration["Platform:TestRun"] == runId && !captured.Task.IsCompleted:
                    captured.TrySetResult(builder);
                    throw new BuildInterceptedException();
            }
        }

        public void OnCompleted()
        {
        }

        public void OnError(Exception error)
        {
        }
    }

    private sealed class BuildInterceptedException() : Exception("The testing builder took over the AppHost's builder.");

    private sealed class TestingBuilder(DistributedApplicationBuilder inner, string stateDirectory) : IDistributedApplicationTestingBuilder
    {
        private DistributedApplication? _app;

        public ConfigurationManager Configuration => inner.Configuration;

        public IHostEnvironment Environment => inner.Environment;

        public IServiceCollection Services => inner.Services;

        public DistributedApplicationExecutionContext ExecutionContext => inner.ExecutionContext;

        public IResourceCollection Resources => inner.Resources;

        public string AppHostDirectory => inner.AppHostDirectory;

        public IResourceBuilder<T> AddResource<T>(T resource) where T : IResource => inner.AddResource(resource);

        public IResourceBuilder<T> CreateResourceBuilder<T>(T resource) where T : IResource => inner.CreateResourceBuilder(resource);

        public Task<DistributedApplication> BuildAsync(CancellationToken cancellationToken = default)
        {
            _app = inner.Build();
            return Task.FromResult(_app);
        }

        public async ValueTask DisposeAsync()
        {
            if (_app is not null)
            {
                await _app.DisposeAsync().ConfigureAwait(false);
            }

            try
            {
                Directory.Delete(stateDirectory, recursive: true);
            }
            catch (DirectoryNotFoundException)
            {
            }
        }
    }
}

/// <summary>A builder obtained from an AppHost under test.</summary>
public interface IDistributedApplicationTestingBuilder : IDistributedApplicationBuilder, IAsyncDisposable
{
    /// <summary>Validates the model and builds the application (not started yet).</summary>
    Task<DistributedApplication> BuildAsync(CancellationToken cancellationToken = default);
}
