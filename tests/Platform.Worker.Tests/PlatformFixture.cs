using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Aspire.Hosting;
using Grpc.Core;
using Grpc.Net.Client;
using Platform.TestSupport;

namespace Platform.Worker.Tests;

/// <summary>The whole platform (real Postgres, Redis, object store, both worker replicas), started once per test class that needs it.</summary>
public sealed class PlatformFixture : IAsyncLifetime
{
    private readonly Dictionary<string, Task<(string, long)>> _shared = [];
    private const string AdminKey = "worker-tests-admin-key";

    public PlatformApp App { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    /// <summary>The internal credential the workers demand (the AppHost's generated <c>internal-api-key</c>).</summary>
    public string InternalKey { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        // These tests pin batch composition and a full queue through the models' max queue delay, which idle dispatch
        // (the workers' default) would pre-empt whenever a replica is idle between two requests; idle dispatch itself is
        // covered by BatcherTests on the same batcher.
        App = await PlatformApp.StartAsync([$"--Parameters:admin-api-key={AdminKey}"], builder =>
        {
            var worker = builder.Project("model-worker").WithEnvironment("ModelWorker__DispatchWhenIdle", "false");
            // eng/gpu-check.sh runs these tests with the workers on CUDA.
            if (Environment.GetEnvironmentVariable("PLATFORM_TEST_EXECUTION_PROVIDER") is { Length: > 0 } provider)
            {
                worker.WithEnvironment("ModelWorker__ExecutionProvider", provider);
            }
        });
        Admin = App.CreateHttpClient("admin-api");
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        InternalKey = await App.InternalApiKeyAsync();
    }

    public async ValueTask DisposeAsync()
    {
        Admin?.Dispose();
        if (App is not null)
        {
            await App.DisposeAsync();
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

    /// <summary>
    /// A gRPC channel to a worker replica's <c>grpc</c> endpoint (HTTP/2, no TLS) carrying the internal credential, as
    /// InferenceApi uses it; with <paramref name="credential"/> false, a channel without it (a stranger on the network).
    /// </summary>
    public GrpcChannel CreateWorkerChannel(int replica, bool credential = true) =>
        GrpcChannel.ForAddress(App.ReplicaAddress("model-worker", replica, "grpc"), new GrpcChannelOptions
        {
            MaxReceiveMessageSize = 64 * 1024 * 1024,
            Credentials = credential
                ? ChannelCredentials.Create(ChannelCredentials.Insecure, CallCredentials.FromInterceptor((_, metadata) =>
                {
                    metadata.Add("authorization", $"Bearer {InternalKey}");
                    return Task.CompletedTask;
                }))
                : ChannelCredentials.Insecure,
            UnsafeUseInsecureChannelCallCredentials = credential,
        });

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
        // One budget for both replicas: the version must be ready on all of them within it.
        var started = TimeProvider.System.GetTimestamp();
        for (var replica = 0; replica < 2; replica++)
        {
            using var http = await App.CreateWorkerHttpClientAsync(replica, cancellationToken);
            await Waits.UntilAsync(async () =>
            {
                using var response = await http.GetAsync($"/v1/models/{name}/versions/{version}/ready", cancellationToken);
                return (response.StatusCode, Body: await response.Content.ReadAsStringAsync(cancellationToken));
            }, r => r.StatusCode == HttpStatusCode.OK && (condition is null || condition(JsonDocument.Parse(r.Body).RootElement)),
                timeout - TimeProvider.System.GetElapsedTime(started),
                $"{name} v{version} ready on replica {replica} within {timeout.TotalSeconds:0} s of the start (the rest of that budget)", cancellationToken);
        }
    }
}
