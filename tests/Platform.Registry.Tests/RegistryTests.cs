using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Amazon.S3;
using Platform.ModelRegistry;
using Platform.OnnxModels;
using Platform.TestSupport;

namespace Platform.Registry.Tests;

public sealed class RegistryTests(PlatformFixture platform)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("GET", "/api/models")]
    [InlineData("GET", "/api/models/anything")]
    [InlineData("POST", "/api/models/anything/versions")]
    [InlineData("POST", "/api/models/anything/versions/1/activate")]
    [InlineData("DELETE", "/api/models/anything/versions/1")]
    [InlineData("PUT", "/api/models/anything/settings")]
    public async Task EveryRegistryRouteNeedsTheAdminKey(string method, string path)
    {
        using var anonymous = platform.App.CreateHttpClient("admin-api");
        using (var response = await anonymous.SendAsync(new HttpRequestMessage(new HttpMethod(method), path) { Content = new ByteArrayContent([1, 2, 3]) }, Ct))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
            Assert.Contains("Authorization", await ErrorOf(response), StringComparison.Ordinal);
        }

        var wrong = new HttpRequestMessage(new HttpMethod(method), path) { Content = new ByteArrayContent([1, 2, 3]) };
        wrong.Headers.Authorization = new AuthenticationHeaderValue("Bearer", platform.AdminKey + "x");
        using (var response = await anonymous.SendAsync(wrong, Ct))
        {
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        }
    }

    [Fact]
    public async Task UploadAnswers201WithMetadataAndIdenticalBytesReturnTheExistingVersion()
    {
        var name = Unique("upload");
        var model = ModelCatalog.Generate("multi-io");
        using var created = await UploadAsync(name, model.Bytes);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal($"/api/models/{name}/versions/1", created.Headers.Location?.OriginalString);
        var body = await Json(created);
        Assert.Equal(name, body.GetProperty("name").GetString());
        Assert.Equal(1, body.GetProperty("version").GetInt64());
        Assert.Equal(model.Sha256, body.GetProperty("sha256").GetString());
        Assert.Equal(model.Bytes.Length, body.GetProperty("sizeBytes").GetInt64());
        Assert.Equal("inactive", body.GetProperty("state").GetString());
        Assert.Equal(
            ["x FP32 [-1,4]", "ids INT64 [-1,3]", "scale FP64 [-1,1]"],
            body.GetProperty("inputs").EnumerateArray().Select(Describe));
        Assert.Equal(
            ["y FP32 [-1,4]", "id_sum INT64 [-1,1]", "positive BOOL [-1,4]", "scale_squared FP64 [-1,1]"],
            body.GetProperty("outputs").EnumerateArray().Select(Describe));

        using var again = await UploadAsync(name, model.Bytes);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        var same = await Json(again);
        Assert.Equal(1, same.GetProperty("version").GetInt64());
        Assert.Equal(model.Sha256, same.GetProperty("sha256").GetString());

        // Stored once, under its hash, byte for byte.
        using var stored = await platform.ObjectStore.GetObjectAsync("models", ModelArtifacts.ObjectKey(model.Sha256), Ct);
        using var copy = new MemoryStream();
        await stored.ResponseStream.CopyToAsync(copy, Ct);
        Assert.Equal(model.Sha256, Convert.ToHexStringLower(SHA256.HashData(copy.ToArray())));
        Assert.Equal(1L, await ScalarAsync("SELECT count(*) FROM model_versions WHERE model_name = $1", name));

        using var listed = await platform.Admin.GetAsync($"/api/models/{name}", Ct);
        var versions = (await Json(listed)).GetProperty("versions").EnumerateArray().ToArray();
        Assert.Single(versions);
        using var one = await platform.Admin.GetAsync($"/api/models/{name}/versions/1", Ct);
        Assert.Equal(model.Sha256, (await Json(one)).GetProperty("sha256").GetString());
        using var all = await platform.Admin.GetAsync("/api/models", Ct);
        Assert.Contains((await Json(all)).GetProperty("models").EnumerateArray(), m => m.GetProperty("name").GetString() == name);
    }

    [Fact]
    public async Task ARandomNonOnnxUploadIsRejectedWithOrtsReasonAndLeavesNothingBehind()
    {
        var name = Unique("garbage");
        var garbage = RandomNumberGenerator.GetBytes(1024 * 1024);
        var sha = Convert.ToHexStringLower(SHA256.HashData(garbage));
        using var response = await UploadAsync(name, garbage);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await ErrorOf(response);
        Assert.StartsWith("body: not a valid ONNX model: ", error, StringComparison.Ordinal);
        Assert.True(error.Length > "body: not a valid ONNX model: ".Length + 5, error);

        var head = await Assert.ThrowsAsync<AmazonS3Exception>(() => platform.ObjectStore.GetObjectMetadataAsync("models", ModelArtifacts.ObjectKey(sha), Ct));
        Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        Assert.Equal(0L, await ScalarAsync("SELECT count(*) FROM model_versions WHERE sha256 = $1", sha));
        Assert.Equal(0L, await ScalarAsync("SELECT count(*) FROM models WHERE name = $1", name));
        using var get = await platform.Admin.GetAsync($"/api/models/{name}", Ct);
        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
    }

    [Fact]
    public async Task ALargeUploadIsStreamedNotBufferedInMemory()
    {
        // 320 MiB: beyond Kestrel's 30 MB default body limit, and far more than the admin API's peak RSS may grow by.
        const long size = 320L * 1024 * 1024;
        var pid = platform.App.ProcessId("admin-api");
        var peakBefore = PeakRssKib(pid);
        using var content = new StreamContent(new RepeatingStream(size));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.ContentLength = size;
        using var response = await platform.Admin.PostAsync($"/api/models/{Unique("large")}/versions", content, Ct);

        // Not ONNX, so ORT refuses it, but only after every byte was received and hashed.
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith("body: not a valid ONNX model", await ErrorOf(response), StringComparison.Ordinal);
        var growth = PeakRssKib(pid) - peakBefore;
        Assert.True(growth < 128 * 1024, $"admin-api peak RSS grew by {growth / 1024} MiB for a {size >> 20} MiB upload");
    }

    /// <summary>VmHWM: the process's peak resident set size.</summary>
    private static long PeakRssKib(int pid) =>
        long.Parse(File.ReadAllLines($"/proc/{pid}/status").Single(l => l.StartsWith("VmHWM:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A long stream of non-ONNX bytes produced on the fly, so the test itself holds no large buffer.</summary>
    private sealed class RepeatingStream(long length) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = (int)Math.Min(count, length - _position);
            for (var i = 0; i < n; i++)
            {
                buffer[offset + i] = (byte)((_position + i) * 2654435761 >> 13);
            }
            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [Fact]
    public async Task VersionsAreNumberedOneTwoThreePerModel()
    {
        var name = Unique("versions");
        var numbers = new List<long>();
        foreach (var seed in new ulong[] { 1, 2, 3 })
        {
            using var response = await UploadAsync(name, ModelCatalog.Generate("mlp", new ModelRequest { Seed = seed }).Bytes);
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            numbers.Add((await Json(response)).GetProperty("version").GetInt64());
        }
        Assert.Equal([1L, 2L, 3L], numbers);

        // Numbers are per model, and a deleted number is not reused.
        using (var deleted = await platform.Admin.DeleteAsync($"/api/models/{name}/versions/3", Ct))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }
        using var fourth = await UploadAsync(name, ModelCatalog.Generate("mlp", new ModelRequest { Seed = 4 }).Bytes);
        Assert.Equal(4, (await Json(fourth)).GetProperty("version").GetInt64());
        using var other = await UploadAsync(Unique("versions"), ModelCatalog.Generate("mlp", new ModelRequest { Seed = 1 }).Bytes);
        Assert.Equal(1, (await Json(other)).GetProperty("version").GetInt64());
    }

    [Theory]
    [InlineData("POST", "/api/models/-bad/versions", 400, "name: '-bad' must start with a letter or digit")]
    [InlineData("POST", "/api/models/has%20space/versions", 400, "name: 'has space'")]
    [InlineData("GET", "/api/models/ok/versions/abc", 400, "version: 'abc' is not a positive integer")]
    [InlineData("GET", "/api/models/ok/versions/0", 400, "version: '0' is not a positive integer")]
    [InlineData("POST", "/api/models/ok/versions?activate=maybe", 400, "activate: 'maybe' is not true or false")]
    [InlineData("GET", "/api/models/never-uploaded", 404, "name: no model 'never-uploaded'")]
    [InlineData("POST", "/api/models/never-uploaded/versions/1/activate", 404, "version: model 'never-uploaded' has no version 1")]
    [InlineData("PUT", "/api/models/never-uploaded/settings", 404, "name: no model 'never-uploaded'")]
    public async Task BadRequestsNameTheField(string method, string path, int status, string message)
    {
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (method != "GET")
        {
            request.Content = method == "PUT"
                ? JsonContent.Create(new { maxBatchSize = 8 })
                : new ByteArrayContent(ModelCatalog.Generate("mlp").Bytes) { Headers = { ContentType = new MediaTypeHeaderValue("application/octet-stream") } };
        }
        using var response = await platform.Admin.SendAsync(request, Ct);
        Assert.Equal(status, (int)response.StatusCode);
        Assert.StartsWith(message, await ErrorOf(response), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheOnlyActiveVersionCannotBeDeletedUnlessForced()
    {
        var name = Unique("delete");
        var v1 = ModelCatalog.Generate("mlp", new ModelRequest { Seed = 11 });
        var v2 = ModelCatalog.Generate("mlp", new ModelRequest { Seed = 12 });
        (await UploadAsync(name, v1.Bytes, activate: true)).Dispose();
        (await UploadAsync(name, v2.Bytes)).Dispose();

        using (var refused = await platform.Admin.DeleteAsync($"/api/models/{name}/versions/1", Ct))
        {
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
            Assert.Contains("only active version", await ErrorOf(refused), StringComparison.Ordinal);
        }

        // With version 2 serving too, version 1 may go; its bytes go with it since nothing else uses them.
        await PostAsync($"/api/models/{name}/versions/2/activate", HttpStatusCode.OK);
        using (var deleted = await platform.Admin.DeleteAsync($"/api/models/{name}/versions/1", Ct))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }
        using (var gone = await platform.Admin.GetAsync($"/api/models/{name}/versions/1", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        }
        await AssertObjectAbsentAsync(v1.Sha256);

        using (var refused = await platform.Admin.DeleteAsync($"/api/models/{name}/versions/2", Ct))
        {
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        }
        using (var forced = await platform.Admin.DeleteAsync($"/api/models/{name}/versions/2?force=true", Ct))
        {
            Assert.Equal(HttpStatusCode.NoContent, forced.StatusCode);
        }
        await AssertObjectAbsentAsync(v2.Sha256);

        // Deactivated versions can be deleted freely.
        (await UploadAsync(name, v1.Bytes, activate: true)).Dispose();
        await PostAsync($"/api/models/{name}/versions/3/deactivate", HttpStatusCode.OK);
        using var inactive = await platform.Admin.DeleteAsync($"/api/models/{name}/versions/3", Ct);
        Assert.Equal(HttpStatusCode.NoContent, inactive.StatusCode);
    }

    [Fact]
    public async Task BytesSharedByTwoModelsSurviveDeletingOneOfThem()
    {
        var bytes = ModelCatalog.Generate("mlp", new ModelRequest { Seed = 77 });
        var first = Unique("shared");
        var second = Unique("shared");
        (await UploadAsync(first, bytes.Bytes)).Dispose();
        (await UploadAsync(second, bytes.Bytes)).Dispose();
        using (var deleted = await platform.Admin.DeleteAsync($"/api/models/{first}/versions/1", Ct))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }
        var head = await platform.ObjectStore.GetObjectMetadataAsync("models", ModelArtifacts.ObjectKey(bytes.Sha256), Ct);
        Assert.Equal(bytes.Bytes.Length, head.ContentLength);
    }

    [Fact]
    public async Task SettingsAreValidatedPerField()
    {
        var name = Unique("settings");
        (await UploadAsync(name, ModelCatalog.Generate("mlp").Bytes)).Dispose();

        await PutSettingsAsync(name, "{\"maxBatchSize\": 0}", HttpStatusCode.BadRequest, "maxBatchSize: must be between 1 and 4096");
        await PutSettingsAsync(name, "{\"maxQueueDelayMicros\": -5}", HttpStatusCode.BadRequest, "maxQueueDelayMicros:");
        await PutSettingsAsync(name, "{\"queueCapacity\": \"many\"}", HttpStatusCode.BadRequest, "queueCapacity:");
        await PutSettingsAsync(name, "{\"cacheTtlSeconds\": 0}", HttpStatusCode.BadRequest, "cacheTtlSeconds:");
        await PutSettingsAsync(name, "not json", HttpStatusCode.BadRequest, "body:");

        await PutSettingsAsync(name, "{\"maxBatchSize\": 16, \"cacheEnabled\": true, \"cacheTtlSeconds\": 60}", HttpStatusCode.OK, null);
        using var settings = await platform.Admin.GetAsync($"/api/models/{name}/settings", Ct);
        var body = await Json(settings);
        Assert.Equal(16, body.GetProperty("maxBatchSize").GetInt32());
        Assert.True(body.GetProperty("cacheEnabled").GetBoolean());
        Assert.Equal(60, body.GetProperty("cacheTtlSeconds").GetInt32());
        Assert.Equal(ModelSettings.Default.QueueCapacity, body.GetProperty("queueCapacity").GetInt32());
    }

    [Fact]
    public async Task ActivationReachesBothWorkerReplicasWithoutARestart()
    {
        var pidsBefore = platform.App.ProcessIds("model-worker").Order().ToArray();
        var name = Unique("rollout");
        (await UploadAsync(name, ModelCatalog.Generate("mlp", new ModelRequest { Seed = 5 }).Bytes)).Dispose();
        await AssertOnWorkersAsync(name, 1, HttpStatusCode.NotFound, TimeSpan.FromSeconds(1));

        // Redis pub/sub carries the change; the reconcile (15 s here) is only the safety net, so this must be quicker.
        var clock = Stopwatch.StartNew();
        await PostAsync($"/api/models/{name}/versions/1/activate", HttpStatusCode.OK);
        await AssertOnWorkersAsync(name, 1, HttpStatusCode.OK, TimeSpan.FromSeconds(5));
        var activation = clock.Elapsed;

        await PostAsync($"/api/models/{name}/versions/1/deactivate", HttpStatusCode.OK);
        await AssertOnWorkersAsync(name, 1, HttpStatusCode.NotFound, TimeSpan.FromSeconds(5));

        Assert.Equal(pidsBefore, platform.App.ProcessIds("model-worker").Order().ToArray());
        TestContext.Current.TestOutputHelper?.WriteLine($"activation reached both replicas in {activation.TotalMilliseconds:0} ms");
    }

    [Fact]
    public async Task AMissedNotificationIsRepairedByThePeriodicReconcile()
    {
        var name = Unique("reconcile");
        (await UploadAsync(name, ModelCatalog.Generate("mlp", new ModelRequest { Seed = 6 }).Bytes)).Dispose();

        // Activate behind the API's back: no notification is published, as if the message had been lost.
        await using (var command = platform.Database.CreateCommand("UPDATE model_versions SET state = 'active' WHERE model_name = $1 AND version = 1"))
        {
            command.Parameters.Add(new Npgsql.NpgsqlParameter { Value = name });
            Assert.Equal(1, await command.ExecuteNonQueryAsync(Ct));
        }
        await AssertOnWorkersAsync(name, 1, HttpStatusCode.OK, PlatformFixture.ReconcileInterval + TimeSpan.FromSeconds(10));
    }

    private async Task AssertOnWorkersAsync(string name, long version, HttpStatusCode expected, TimeSpan within)
    {
        // One budget for both replicas: the change must have reached all of them within it.
        var started = Stopwatch.StartNew();
        for (var replica = 0; replica < 2; replica++)
        {
            using var http = await platform.App.CreateWorkerHttpClientAsync(replica, Ct);
            await Waits.UntilAsync(async () =>
            {
                using var response = await http.GetAsync($"/v1/models/{name}/versions/{version}/ready", Ct);
                return (response.StatusCode, Body: await response.Content.ReadAsStringAsync(Ct));
            }, r => r.StatusCode == expected, within - started.Elapsed,
                $"replica {replica}: {name} v{version} answering {(int)expected} within {within.TotalSeconds:0} s of the start (the rest of that budget)", Ct);
        }
    }

    private async Task PutSettingsAsync(string name, string json, HttpStatusCode status, string? error)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await platform.Admin.PutAsync($"/api/models/{name}/settings", content, Ct);
        Assert.Equal(status, response.StatusCode);
        if (error is not null)
        {
            Assert.StartsWith(error, await ErrorOf(response), StringComparison.Ordinal);
        }
    }

    private async Task PostAsync(string path, HttpStatusCode expected)
    {
        using var response = await platform.Admin.PostAsync(path, null, Ct);
        Assert.True(response.StatusCode == expected, await response.Content.ReadAsStringAsync(Ct));
    }

    private async Task AssertObjectAbsentAsync(string sha256)
    {
        var error = await Assert.ThrowsAsync<AmazonS3Exception>(() => platform.ObjectStore.GetObjectMetadataAsync("models", ModelArtifacts.ObjectKey(sha256), Ct));
        Assert.Equal(HttpStatusCode.NotFound, error.StatusCode);
    }

    private async Task<HttpResponseMessage> UploadAsync(string name, byte[] bytes, bool activate = false)
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return await platform.Admin.PostAsync($"/api/models/{name}/versions{(activate ? "?activate=true" : "")}", content, Ct);
    }

    private async Task<long> ScalarAsync(string sql, string parameter)
    {
        await using var command = platform.Database.CreateCommand(sql);
        command.Parameters.Add(new Npgsql.NpgsqlParameter { Value = parameter });
        return (long)(await command.ExecuteScalarAsync(Ct))!;
    }

    private static async Task<JsonElement> Json(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;

    private static async Task<string> ErrorOf(HttpResponseMessage response) =>
        (await Json(response)).GetProperty("error").GetString()!;

    private static string Describe(JsonElement tensor) =>
        $"{tensor.GetProperty("name").GetString()} {tensor.GetProperty("datatype").GetString()} [{string.Join(",", tensor.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()))}]";

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];
}
