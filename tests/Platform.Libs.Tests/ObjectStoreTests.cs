using System.Security.Cryptography;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Platform.ObjectStore;

namespace Platform.Libs.Tests;

public sealed class ObjectStoreTests(ServersFixture servers)
{
    private IHost Build(string bucket)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, EnvironmentName = "Testing" });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:objectstore"] = servers.ObjectStoreConnectionString,
            ["ObjectStore:Bucket"] = bucket,
        });
        builder.Services.AddLogging();
        builder.AddPlatformObjectStore();
        return builder.Build();
    }

    private static string NewBucket() => "t-" + Guid.NewGuid().ToString("N")[..20];

    private static async Task<string> Sha256Async(Stream stream, CancellationToken ct) =>
        Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, ct));

    [Fact]
    public async Task SmallObject_RoundTripsByteIdentical()
    {
        var ct = TestContext.Current.CancellationToken;
        using var host = Build(NewBucket());
        var store = host.Services.GetRequiredService<IObjectStore>();
        await store.EnsureBucketAsync(ct);
        var bytes = new byte[1024];
        new Random(1).NextBytes(bytes);

        var put = await store.PutAsync("models/small.bin", new MemoryStream(bytes), bytes.Length, ct);
        await using var read = await store.GetAsync("models/small.bin", ct);
        var readSha = await Sha256Async(read, ct);

        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), put.Sha256);
        Assert.Equal(put.Sha256, readSha);
        Assert.Equal(1024, put.Length);
        Assert.Equal(1, put.PartCount);
        Assert.Equal(1024, (await store.HeadAsync("models/small.bin", ct))?.Length);
    }

    [Fact]
    public async Task UnseekableSmallObject_GoesAsSinglePut()
    {
        var ct = TestContext.Current.CancellationToken;
        using var host = Build(NewBucket());
        var store = host.Services.GetRequiredService<IObjectStore>();
        await store.EnsureBucketAsync(ct);

        var put = await store.PutAsync("stream.bin", new PseudoRandomStream(seed: 7, length: 300_000), cancellationToken: ct);
        await using var read = await store.GetAsync("stream.bin", ct);

        Assert.Equal(1, put.PartCount);
        Assert.Equal(300_000, put.Length);
        Assert.Equal(put.Sha256, await Sha256Async(read, ct));
    }

    [Fact]
    public async Task LargeObject_GoesMultipart_AndRoundTripsByteIdentical()
    {
        var ct = TestContext.Current.CancellationToken;
        using var host = Build(NewBucket());
        var store = host.Services.GetRequiredService<IObjectStore>();
        await store.EnsureBucketAsync(ct);
        const long length = 80L * 1024 * 1024 + 12_345;
        var expected = await Sha256Async(new PseudoRandomStream(seed: 42, length), ct);

        // Unseekable and larger than the threshold: streamed in bounded parts, never buffered whole.
        var put = await store.PutAsync("models/large.onnx", new PseudoRandomStream(seed: 42, length), length, ct);
        await using var read = await store.GetAsync("models/large.onnx", ct);
        var readSha = await Sha256Async(read, ct);

        Assert.Equal(expected, put.Sha256);
        Assert.Equal(expected, readSha);
        Assert.Equal(length, put.Length);
        Assert.True(put.PartCount > 1, $"expected a multipart upload, got {put.PartCount} part(s)");
        Assert.Equal(length, (await store.HeadAsync("models/large.onnx", ct))?.Length);
    }

    [Fact]
    public async Task MissingKey_IsAClearNotFound()
    {
        var ct = TestContext.Current.CancellationToken;
        var bucket = NewBucket();
        using var host = Build(bucket);
        var store = host.Services.GetRequiredService<IObjectStore>();
        await store.EnsureBucketAsync(ct);

        var ex = await Assert.ThrowsAsync<ObjectNotFoundException>(() => store.GetAsync("models/nope.bin", ct));

        Assert.Equal("models/nope.bin", ex.Key);
        Assert.Contains(bucket, ex.Message, StringComparison.Ordinal);
        Assert.Null(await store.HeadAsync("models/nope.bin", ct));
        Assert.False(await store.ExistsAsync("models/nope.bin", ct));
    }

    [Fact]
    public async Task List_ByPrefix_AndDelete()
    {
        var ct = TestContext.Current.CancellationToken;
        using var host = Build(NewBucket());
        var store = host.Services.GetRequiredService<IObjectStore>();
        await store.EnsureBucketAsync(ct);
        await store.EnsureBucketAsync(ct);
        foreach (var key in new[] { "a/1.bin", "a/2.bin", "b/1.bin" })
        {
            await store.PutAsync(key, new MemoryStream([1, 2, 3]), 3, ct);
        }

        var listed = new List<string>();
        await foreach (var item in store.ListAsync("a/", ct))
        {
            listed.Add(item.Key);
            Assert.Equal(3, item.Length);
        }

        Assert.Equal(["a/1.bin", "a/2.bin"], listed);
        await store.DeleteAsync("a/1.bin", ct);
        await store.DeleteAsync("a/1.bin", ct);
        Assert.False(await store.ExistsAsync("a/1.bin", ct));
        Assert.True(await store.ExistsAsync("a/2.bin", ct));
    }

    [Fact]
    public async Task HealthCheck_FollowsBucketExistence()
    {
        var ct = TestContext.Current.CancellationToken;
        using var host = Build(NewBucket());
        var health = host.Services.GetRequiredService<HealthCheckService>();

        var before = await health.CheckHealthAsync(ct);
        await host.Services.GetRequiredService<IObjectStore>().EnsureBucketAsync(ct);
        var after = await health.CheckHealthAsync(ct);

        Assert.Equal(HealthStatus.Unhealthy, before.Entries["objectstore"].Status);
        Assert.Equal(HealthStatus.Healthy, after.Entries["objectstore"].Status);
    }

    [Theory]
    [InlineData("Endpoint=http://127.0.0.1:9000;AccessKey=ak;SecretKey=sk", "http://127.0.0.1:9000/", "ak", "sk")]
    [InlineData("endpoint=https://minio.platform.svc:9000;accesskey=A;secretkey=\"s;k\"", "https://minio.platform.svc:9000/", "A", "s;k")]
    public void ConnectionString_Parses(string connectionString, string endpoint, string accessKey, string secretKey)
    {
        var parsed = ObjectStoreConnection.Parse(connectionString);

        Assert.Equal(new Uri(endpoint), parsed.Endpoint);
        Assert.Equal(accessKey, parsed.AccessKey);
        Assert.Equal(secretKey, parsed.SecretKey);
        Assert.DoesNotContain(secretKey, parsed.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ConnectionString_WithoutSecret_IsRejected()
    {
        var ex = Assert.Throws<FormatException>(() => ObjectStoreConnection.Parse("Endpoint=http://127.0.0.1:9000;AccessKey=ak"));
        Assert.Contains("SecretKey", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Deterministic, unseekable byte source of a given length (xorshift), so large uploads need no memory.</summary>
    private sealed class PseudoRandomStream(ulong seed, long length) : Stream
    {
        private ulong _state = seed | 1;
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = (int)Math.Min(buffer.Length, length - _position);
            for (var i = 0; i < n; i++)
            {
                _state ^= _state << 13;
                _state ^= _state >> 7;
                _state ^= _state << 17;
                buffer[i] = (byte)_state;
            }

            _position += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
