using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Inference.OpenInference;
using Platform.Inference.Protocol;
using Platform.OnnxRuntime;
using Platform.TestSupport;

[assembly: AssemblyFixture(typeof(Platform.Integration.Tests.OrtFixture))]

namespace Platform.Integration.Tests;

/// <summary>The process's one ONNX Runtime environment, for reference answers computed in-process.</summary>
public sealed class OrtFixture : IDisposable
{
    public OrtEnvironment Ort { get; } = new();

    public void Dispose() => Ort.Dispose();
}

/// <summary>One inference answer: status, the decoded response on 200, the error message otherwise.</summary>
public sealed record InferResult(int Status, InferResponse? Response, string? Error, HttpResponseHeaders Headers)
{
    public override string ToString() => $"{Status} {Error}";
}

/// <summary>
/// What the feature binding tests call on the running platform: AdminApi's registry (admin Bearer key),
/// ContextEnrichment's feature store and InferenceApi (binary tensor protocol, through <see cref="InferAsync"/> only).
/// </summary>
public sealed class FeatureBindingClient : IDisposable
{
    private readonly HttpClient _admin;
    private readonly HttpClient _features;
    private readonly HttpClient _inference;
    private readonly SemaphoreSlim _tenantLock = new(1, 1);
    private TestTenant? _tenant;

    public FeatureBindingClient(PlatformFixture fixture)
    {
        _admin = fixture.App.CreateHttpClient("admin-api");
        var adminKey = PlatformFixture.AdminKey;
        _admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
        _features = fixture.App.CreateHttpClient("context-enrichment");
        _inference = fixture.App.CreateHttpClient("inference-api");
    }

    public HttpClient Admin => _admin;

    public async Task<long> DeployAsync(string model, byte[] onnx, IReadOnlyList<InferTensor> probe, CancellationToken ct)
    {
        using var content = new ByteArrayContent(onnx);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var created = await _admin.PostAsync($"/api/models/{model}/versions?activate=true", content, ct);
        var body = await created.Content.ReadAsStringAsync(ct);
        Assert.True(created.IsSuccessStatusCode, $"upload {model}: {(int)created.StatusCode} {body}");
        var version = JsonDocument.Parse(body).RootElement.GetProperty("version").GetInt64();

        // Workers load an activated version asynchronously (pub/sub + reconcile).
        var result = await InferUntilAsync(model, probe, null, r => r.Status == 200, $"{model} v{version} served", ct);
        Assert.True(result.Status == 200, $"{model} v{version} was not served: {result}");
        return version;
    }

    public async Task<HttpResponseMessage> PutBindingsAsync(string model, long version, object body, CancellationToken ct) =>
        await _admin.PutAsJsonAsync($"/api/models/{model}/versions/{version}/bindings", body, ct);

    public async Task BindAsync(string model, long version, object bindings, CancellationToken ct)
    {
        using var response = await PutBindingsAsync(model, version, new { bindings }, ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"bindings of {model}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
    }

    public async Task PutFeaturesAsync(string featureSet, string entity, float[] values, CancellationToken ct)
    {
        using var response = await _features.PutAsJsonAsync($"/api/features/{featureSet}/{entity}", new { values }, ct);
        Assert.True(response.IsSuccessStatusCode, $"features {featureSet}/{entity}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
    }

    /// <summary>
    /// Sends one inference request with this client's tenant API key (InferenceApi requires one on /v2/models/*).
    /// Every inference call of these tests goes through here.
    /// </summary>
    public async Task<InferResult> InferAsync(string model, IReadOnlyList<InferTensor> inputs, string? entityId, CancellationToken ct)
    {
        var tenant = await TenantAsync(ct);
        var buffer = new ArrayBufferWriter<byte>();
        var jsonLength = InferClientCodec.WriteRequest(buffer, inputs, TensorEncoding.Binary,
            parameters: new InferRequestParameters { BinaryDataOutput = true, EntityId = entityId });
        using var content = new ByteArrayContent(buffer.WrittenSpan.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add(InferRequestReader.HeaderContentLengthHeader, jsonLength.ToString(CultureInfo.InvariantCulture));
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{model}/infer") { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", tenant.Key);
        using var response = await _inference.SendAsync(request, ct);
        var body = await response.Content.ReadAsByteArrayAsync(ct);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            var error = JsonDocument.Parse(body).RootElement.GetProperty("error").GetString();
            return new InferResult((int)response.StatusCode, null, error, response.Headers);
        }

        int? headerLength = response.Headers.TryGetValues(InferRequestReader.HeaderContentLengthHeader, out var values)
            ? int.Parse(values.First(), CultureInfo.InvariantCulture)
            : null;
        return new InferResult(200, InferClientCodec.ReadResponse(body, headerLength), null, response.Headers);
    }

    /// <summary>
    /// Repeats <see cref="InferAsync"/> until <paramref name="done"/> holds (30 s at most, then a <see cref="TimeoutException"/>
    /// naming <paramref name="what"/>): registry changes (an activation, new bindings) reach InferenceApi and the workers asynchronously.
    /// </summary>
    public Task<InferResult> InferUntilAsync(string model, IReadOnlyList<InferTensor> inputs, string? entityId,
        Func<InferResult, bool> done, string what, CancellationToken ct) =>
        Waits.UntilAsync(() => InferAsync(model, inputs, entityId, ct), done, TimeSpan.FromSeconds(30), what, ct);

    /// <summary>
    /// Infers once InferenceApi applies the model's bindings: until then it answers the validator's "missing input"
    /// 400 for a request that leaves the bound inputs out.
    /// </summary>
    public Task<InferResult> InferBoundAsync(string model, IReadOnlyList<InferTensor> inputs, string entityId, CancellationToken ct) =>
        InferUntilAsync(model, inputs, entityId, r => !(r.Status == 400 && r.Error!.StartsWith("missing input", StringComparison.Ordinal)),
            $"{model}'s bindings applied in InferenceApi", ct);

    /// <summary>A tenant allowed every model (no rate limit to speak of), created on first use through AdminApi.</summary>
    private async Task<TestTenant> TenantAsync(CancellationToken ct)
    {
        await _tenantLock.WaitAsync(ct);
        try
        {
            return _tenant ??= await PlatformTenants.CreateAsync(_admin, $"bindings-{Guid.NewGuid():N}"[..21], cancellationToken: ct);
        }
        finally
        {
            _tenantLock.Release();
        }
    }

    public void Dispose()
    {
        _tenantLock.Dispose();
        _admin.Dispose();
        _features.Dispose();
        _inference.Dispose();
    }
}
