using System.Buffers;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Inference.OpenInference;
using Platform.Inference.Protocol;
using Platform.TestSupport;

namespace Platform.Serving.Tests;

/// <summary>The registry calls the tests need (AdminApi, admin Bearer key) and protocol calls to InferenceApi.</summary>
public sealed class ServingClient(HttpClient admin, HttpClient inference)
{
    public HttpClient Inference => inference;

    public async Task<long> UploadAsync(string model, byte[] onnx, CancellationToken ct)
    {
        using var content = new ByteArrayContent(onnx);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await admin.PostAsync($"/api/models/{model}/versions", content, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        Assert.True(response.IsSuccessStatusCode, $"upload {model}: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("version").GetInt64();
    }

    public async Task ActivateAsync(string model, long version, CancellationToken ct)
    {
        using var response = await admin.PostAsync($"/api/models/{model}/versions/{version}/activate", null, ct);
        Assert.True(response.IsSuccessStatusCode, $"activate {model} v{version}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
    }

    public async Task SetSettingsAsync(string model, object settings, CancellationToken ct)
    {
        using var response = await admin.PutAsJsonAsync($"/api/models/{model}/settings", settings, ct);
        Assert.True(response.IsSuccessStatusCode, $"settings {model}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
    }

    /// <summary>Waits until InferenceApi serves <paramref name="version"/> of the model (workers loaded it).</summary>
    public Task WaitServedAsync(string model, long version, InferTensor probe, CancellationToken ct) =>
        Waits.UntilAsync(async () =>
        {
            var (status, body, _) = await PostAsync($"/v2/models/{model}/versions/{version}/infer", [probe], TensorEncoding.Binary, ct: ct);
            return (Status: status, Body: System.Text.Encoding.UTF8.GetString(body));
        }, r => r.Status == 200, TimeSpan.FromSeconds(60), $"{model} v{version} served", ct);

    public async Task<(int Status, byte[] Body, HttpResponseMessage Response)> PostAsync(
        string path, IReadOnlyList<InferTensor> inputs, TensorEncoding encoding,
        IReadOnlyList<RequestedOutput>? outputs = null, InferRequestParameters? parameters = null, string? id = null, CancellationToken ct = default)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var jsonLength = InferClientCodec.WriteRequest(buffer, inputs, encoding, outputs, parameters, id);
        return await PostRawAsync(path, buffer.WrittenSpan.ToArray(), encoding == TensorEncoding.Binary ? jsonLength : null, ct);
    }

    public async Task<(int Status, byte[] Body, HttpResponseMessage Response)> PostRawAsync(string path, byte[] body, int? headerLength, CancellationToken ct,
        string? contentEncoding = null)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue(headerLength is null ? "application/json" : "application/octet-stream");
        if (contentEncoding is not null)
        {
            content.Headers.ContentEncoding.Add(contentEncoding);
        }

        if (headerLength is { } length)
        {
            content.Headers.Add(InferRequestReader.HeaderContentLengthHeader, length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        var response = await inference.PostAsync(path, content, ct);
        return ((int)response.StatusCode, await response.Content.ReadAsByteArrayAsync(ct), response);
    }

    /// <summary><paramref name="data"/> in HTTP content coding <paramref name="coding"/> (gzip, deflate as zlib, br).</summary>
    public static byte[] Compress(byte[] data, string coding)
    {
        using var compressed = new MemoryStream();
        using (Stream stream = coding switch
        {
            "gzip" => new System.IO.Compression.GZipStream(compressed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true),
            "deflate" => new System.IO.Compression.ZLibStream(compressed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true),
            "br" => new System.IO.Compression.BrotliStream(compressed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true),
            _ => throw new ArgumentOutOfRangeException(nameof(coding)),
        })
        {
            stream.Write(data);
        }

        return compressed.ToArray();
    }

    public static InferResponse Decode(byte[] body, HttpResponseMessage response)
    {
        int? headerLength = response.Headers.TryGetValues(InferRequestReader.HeaderContentLengthHeader, out var values)
            ? int.Parse(values.First(), System.Globalization.CultureInfo.InvariantCulture)
            : null;
        return InferClientCodec.ReadResponse(body, headerLength);
    }
}
