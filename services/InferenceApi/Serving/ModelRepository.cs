using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Platform.Inference.Routing;

namespace Platform.InferenceApi.Serving;

/// <summary>Options of <see cref="ModelRepository"/> (configuration section <c>ModelRepository</c>).</summary>
public sealed class ModelRepositoryOptions
{
    /// <summary>Configuration section.</summary>
    public const string SectionName = "ModelRepository";

    /// <summary>AdminApi's base address; the logical name is resolved by service discovery.</summary>
    public Uri AdminApiUri { get; set; } = new("http://admin-api");

    /// <summary>How long a load waits for a model worker to have the version ready (Triton's load returns once the model is loaded).</summary>
    public TimeSpan LoadTimeout { get; set; } = TimeSpan.FromSeconds(60);
}

/// <summary>One entry of the repository index (Triton's <c>RepositoryIndexResponse.ModelIndex</c>).</summary>
/// <param name="Name">Model name.</param>
/// <param name="Version">Version number.</param>
/// <param name="State">READY (active and loaded on a worker), LOADING (active, no worker has it yet) or UNAVAILABLE (not active).</param>
/// <param name="Reason">Why it is not READY.</param>
public sealed record RepositoryEntry(string Name, string Version, string State, string Reason);

/// <summary>
/// Triton's model repository extension for InferenceApi's clients (REST and gRPC): the registry lives in AdminApi,
/// which checks the admin key and activates or deactivates versions; this side forwards the caller's key, tells READY
/// from LOADING by asking the workers, and makes a load return only once a worker serves the version.
/// </summary>
public sealed class ModelRepository(IHttpClientFactory http, WorkerClient workers, ServedModelCatalog catalog,
    IOptions<ModelRepositoryOptions> options, TimeProvider timeProvider)
{
    /// <summary>Name of the HttpClient to AdminApi.</summary>
    public const string HttpClientName = "admin-api-repository";

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>The index; <paramref name="readyOnly"/> keeps the READY entries.</summary>
    public async Task<(IReadOnlyList<RepositoryEntry>? Index, InferenceFailure? Failure)> IndexAsync(string key, bool readyOnly, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(key, "v2/repository/index", new { ready = false }, cancellationToken);
        if (await FailureOf(response, cancellationToken) is { } failure)
        {
            return (null, failure);
        }

        var entries = await response.Content.ReadFromJsonAsync<RepositoryEntry[]>(Json, cancellationToken) ?? [];
        var refined = new List<RepositoryEntry>(entries.Length);
        foreach (var entry in entries)
        {
            var current = entry;
            if (entry.State == "READY" && long.TryParse(entry.Version, NumberStyles.None, CultureInfo.InvariantCulture, out var version)
                && !await workers.IsLoadedOnAnyReplicaAsync(entry.Name, version, cancellationToken))
            {
                current = entry with { State = "LOADING", Reason = "active; no model worker has loaded it yet" };
            }

            if (!readyOnly || current.State == "READY")
            {
                refined.Add(current);
            }
        }

        return (refined, null);
    }

    /// <summary>Activates <paramref name="model"/>'s newest version (or <paramref name="version"/>) and waits until a worker serves it.</summary>
    public async Task<InferenceFailure?> LoadAsync(string key, string model, long? version, CancellationToken cancellationToken)
    {
        object body = version is { } v ? new { parameters = new { version = v } } : new { };
        using var response = await SendAsync(key, $"v2/repository/models/{Uri.EscapeDataString(model)}/load", body, cancellationToken);
        if (await FailureOf(response, cancellationToken) is { } failure)
        {
            return failure;
        }

        var loaded = await response.Content.ReadFromJsonAsync<LoadAnswer>(Json, cancellationToken);
        var active = long.Parse(loaded!.Version, NumberStyles.None, CultureInfo.InvariantCulture);
        await catalog.RefreshAsync(cancellationToken);
        var deadline = timeProvider.GetUtcNow() + options.Value.LoadTimeout;
        while (!await workers.IsLoadedOnAnyReplicaAsync(model, active, cancellationToken))
        {
            if (timeProvider.GetUtcNow() >= deadline)
            {
                return new InferenceFailure(503,
                    $"model '{model}' version {active} is active but no model worker loaded it within {options.Value.LoadTimeout.TotalSeconds:0} s; see the index for its state", 1000);
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), timeProvider, cancellationToken);
        }

        return null;
    }

    /// <summary>Deactivates every active version of <paramref name="model"/>.</summary>
    public async Task<InferenceFailure?> UnloadAsync(string key, string model, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(key, $"v2/repository/models/{Uri.EscapeDataString(model)}/unload", new { }, cancellationToken);
        var failure = await FailureOf(response, cancellationToken);
        if (failure is null)
        {
            await catalog.RefreshAsync(cancellationToken);
        }

        return failure;
    }

    private async Task<HttpResponseMessage> SendAsync(string key, string path, object body, CancellationToken cancellationToken)
    {
        using var client = http.CreateClient(HttpClientName);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(options.Value.AdminApiUri, path))
        {
            Content = JsonContent.Create(body),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        try
        {
            return await client.SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            return new HttpResponseMessage(System.Net.HttpStatusCode.ServiceUnavailable)
            {
                Content = JsonContent.Create(new { error = $"the model registry (admin-api) is unavailable: {ex.Message}" }),
            };
        }
    }

    private static async Task<InferenceFailure?> FailureOf(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return null;
        }

        var status = (int)response.StatusCode;
        string message;
        try
        {
            message = (await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("error").GetString() ?? response.ReasonPhrase ?? "error";
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            message = $"the model registry answered {status} {response.ReasonPhrase}";
        }

        return new InferenceFailure(status >= 500 ? 503 : status, message, status >= 500 ? 1000 : 0);
    }

    private sealed record LoadAnswer(string Name, string Version);
}
