using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Hosting;
using Platform.Hosting.ApplicationModel;
using Grpc.Net.Client;
using Platform.Hosting.Testing;

namespace Platform.Worker.Tests;

/// <summary>The whole platform (real Postgres, Redis, object store, both worker replicas), started once per test class that needs it.</summary>
public sealed class PlatformFixture : IAsyncLifetime
{
    private readonly Dictionary<string, Task<(string, long)>> _shared = [];
    private IDistributedApplicationTestingBuilder? _builder;

    public DistributedApplication App { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        _builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Platform_AppHost>();
        // These tests pin batch composition and a full queue through the models' max queue delay, which idle dispatch
        // (the workers' default) would pre-empt whenever a replica is idle between two requests; idle dispatch itself is
        // covered by BatcherTests on the same batcher.
        var worker = _builder.Resources.OfType<Platform.Hosting.ApplicationModel.ProjectResource>().Single(r => r.Name == "model-worker");
        _builder.CreateResourceBuilder(worker).WithEnvironment("ModelWorker__DispatchWhenIdle", "false");
        App = await _builder.BuildAsync();
        await App.StartAsync();
        await Task.WhenAll(
            App.WaitForResourceHealthyAsync("admin-api", TimeSpan.FromSeconds(180)),
            App.WaitForResourceHealthyAsync("model-worker", TimeSpan.FromSeconds(180)));
        var key = ((ParameterResource)App.Resources.Find("admin-api-key")!).Value;
        Admin = App.CreateHttpClient("admin-api");
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
    }

    public async ValueTask DisposeAsync()
    {
        Admin?.Dispose();
        if (_builder is not null)
        {
            await _builder.DisposeAsync();
        }
    }

    /// <summary>A model shared by several tests of a class (xunit makes a class instance per test), created once.</summary>
    public Task<(string Name, long Version)> SharedAsync(string key, Func<Task<(string, long)>> create)
    {
        lock (_shared)
        {
            if (!_shared.TryGetValue(key, out var task))
            {
                _shared[key] = task = create();
            }
            return task;
        }
    }

    /// <summary>A gRPC channel to a worker replica's <c>grpc</c> endpoint (HTTP/2, no TLS), as InferenceApi uses it.</summary>
    public GrpcChannel CreateWorkerChannel(int replica) =>
        GrpcChannel.ForAddress(App.GetEndpoint("model-worker", "grpc", replica), new GrpcChannelOptions { MaxReceiveMessageSize = 64 * 1024 * 1024 });

    /// <summary>Uploads and activates a model; returns its version.</summary>
    public async Task<long> UploadActiveAsync(string name, byte[] model, CancellationToken cancellationToken)
    {
        using var content = new ByteArrayContent(model);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await Admin.PostAsync($"/api/models/{name}/versions?activate=true", content, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        Assert.True(response.StatusCode == HttpStatusCode.Created, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("version").GetInt64();
    }

    public async Task PutSettingsAsync(string name, object settings, CancellationToken cancellationToken)
    {
        using var response = await Admin.PutAsJsonAsync($"/api/models/{name}/settings", settings, cancellationToken);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
    }

    /// <summary>Polls every replica's readiness endpoint (HTTP/1.1) until the version is ready on all of them.</summary>
    public async Task WaitUntilReadyEverywhereAsync(string name, long version, TimeSpan timeout, CancellationToken cancellationToken,
        Func<JsonElement, bool>? condition = null)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        for (var replica = 0; replica < 2; replica++)
        {
            using var http = App.CreateHttpClient("model-worker", replica: replica);
            string last = "";
            while (true)
            {
                try
                {
                    using var response = await http.GetAsync($"/v1/models/{name}/versions/{version}/ready", deadline.Token);
                    last = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync(deadline.Token)}";
                    if (response.StatusCode == HttpStatusCode.OK
                        && (condition is null || condition(JsonDocument.Parse(last[4..]).RootElement)))
                    {
                        break;
                    }
                    await Task.Delay(100, deadline.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new TimeoutException($"{name} v{version} not ready on replica {replica} within {timeout}: {last}");
                }
            }
        }
    }
}
