using System.Buffers;
using System.Net;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Platform.ObjectStore;

/// <summary>
/// <see cref="IObjectStore"/> over the S3 API. Every upload is sent with a plain Content-Length body (no aws-chunked
/// encoding, no trailing checksums): s3rver does not decode the SDK's chunked streaming signature and would store the
/// framing as content. That makes the SDK sign the payload hash, which needs a seekable body, so unseekable sources are
/// uploaded one bounded part buffer at a time.
/// </summary>
public sealed partial class S3ObjectStore(IAmazonS3 s3, IOptions<ObjectStoreOptions> options, ILogger<S3ObjectStore> logger) : IObjectStore
{
    private const int MinimumPartSize = 5 * 1024 * 1024;
    private readonly ObjectStoreOptions _options = options.Value;

    /// <inheritdoc />
    public string Bucket => _options.Bucket;

    /// <summary>Builds an S3 client configured for MinIO/s3rver-style endpoints (path-style addressing, no chunked uploads).</summary>
    /// <param name="connection">Endpoint and credentials.</param>
    /// <param name="region">Signing region.</param>
    /// <param name="requestTimeout">Per-attempt timeout with one retry (<see cref="ObjectStoreOptions.RequestTimeout"/>); null keeps the SDK's.</param>
    public static AmazonS3Client CreateClient(ObjectStoreConnection connection, string region = "us-east-1", TimeSpan? requestTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var config = new AmazonS3Config
        {
            ServiceURL = connection.Endpoint.ToString(),
            ForcePathStyle = true,
            AuthenticationRegion = region,
            UseHttp = connection.Endpoint.Scheme == Uri.UriSchemeHttp,
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        };
        if (requestTimeout is { } timeout)
        {
            config.Timeout = timeout;
            config.MaxErrorRetry = 1;
        }

        return new AmazonS3Client(new BasicAWSCredentials(connection.AccessKey, connection.SecretKey), config);
    }

    /// <inheritdoc />
    public async Task<ObjectPutResult> PutAsync(string key, Stream content, long? length = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        ArgumentNullException.ThrowIfNull(content);
        if (_options.PartSizeBytes < MinimumPartSize)
        {
            throw new InvalidOperationException($"ObjectStore:PartSizeBytes must be at least {MinimumPartSize} (S3 minimum part size).");
        }

        if (content.CanSeek && content.Length - content.Position <= _options.MultipartThresholdBytes)
        {
            return await PutSeekableAsync(key, content, cancellationToken);
        }

        return await PutInPartsAsync(key, content, cancellationToken);
    }

    /// <inheritdoc />
    public async Task<Stream> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        try
        {
            var response = await s3.GetObjectAsync(Bucket, key, cancellationToken);
            return new ResponseStream(response);
        }
        catch (AmazonS3Exception ex) when (IsNotFound(ex))
        {
            throw new ObjectNotFoundException(Bucket, key, ex);
        }
    }

    /// <inheritdoc />
    public async Task<ObjectInfo?> HeadAsync(string key, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        try
        {
            var response = await s3.GetObjectMetadataAsync(Bucket, key, cancellationToken);
            return new ObjectInfo(key, response.ContentLength, TrimETag(response.ETag), response.LastModified is { } m ? new DateTimeOffset(m) : null);
        }
        catch (AmazonS3Exception ex) when (IsNotFound(ex))
        {
            return null;
        }
    }

    /// <inheritdoc />
    public async Task<bool> ExistsAsync(string key, CancellationToken cancellationToken = default) =>
        await HeadAsync(key, cancellationToken) is not null;

    /// <inheritdoc />
    public async Task DeleteAsync(string key, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        await s3.DeleteObjectAsync(Bucket, key, cancellationToken);
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var request = new ListObjectsV2Request { BucketName = Bucket, Prefix = prefix ?? string.Empty };
        while (true)
        {
            var response = await s3.ListObjectsV2Async(request, cancellationToken);
            foreach (var item in response.S3Objects ?? [])
            {
                yield return new ObjectInfo(item.Key, item.Size ?? 0, TrimETag(item.ETag), item.LastModified is { } m ? new DateTimeOffset(m) : null);
            }

            if (response.IsTruncated != true || string.IsNullOrEmpty(response.NextContinuationToken))
            {
                yield break;
            }

            request.ContinuationToken = response.NextContinuationToken;
        }
    }

    /// <inheritdoc />
    public async Task EnsureBucketAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await s3.PutBucketAsync(new PutBucketRequest { BucketName = Bucket }, cancellationToken);
            LogBucketCreated(logger, Bucket);
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.Conflict
            || ex.ErrorCode is "BucketAlreadyOwnedByYou" or "BucketAlreadyExists")
        {
            // Several replicas race to create it; already there is the outcome we want.
        }
    }

    /// <summary>
    /// Asks for the bucket's location: proves the endpoint answers, the credentials work and the bucket exists, without
    /// listing objects (s3rver lists by reading every object's metadata, and one object being deleted concurrently made
    /// a one-key listing fail with 500 and the workers' health flap).
    /// </summary>
    internal async Task ProbeAsync(CancellationToken cancellationToken) =>
        await s3.GetBucketLocationAsync(new GetBucketLocationRequest { BucketName = Bucket }, cancellationToken);

    private async Task<ObjectPutResult> PutSeekableAsync(string key, Stream content, CancellationToken cancellationToken)
    {
        // Hash first, then let the SDK read the same bytes again to sign and send them: no copy in memory.
        var start = content.Position;
        var sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(content, cancellationToken));
        var length = content.Position - start;
        content.Position = start;

        var response = await s3.PutObjectAsync(
            new PutObjectRequest
            {
                BucketName = Bucket,
                Key = key,
                InputStream = content,
                AutoCloseStream = false,
                AutoResetStreamPosition = true,
                UseChunkEncoding = false,
                Headers = { ContentLength = length },
            },
            cancellationToken);
        return new ObjectPutResult(key, length, sha256, TrimETag(response.ETag), 1);
    }

    private async Task<ObjectPutResult> PutInPartsAsync(string key, Stream content, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(_options.PartSizeBytes);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        string? uploadId = null;
        try
        {
            var filled = await content.ReadAtLeastAsync(buffer.AsMemory(0, _options.PartSizeBytes), _options.PartSizeBytes, throwOnEndOfStream: false, cancellationToken);
            hash.AppendData(buffer, 0, filled);
            if (filled < _options.PartSizeBytes)
            {
                // Everything fitted in one part buffer: a single PUT.
                using var body = new MemoryStream(buffer, 0, filled, writable: false);
                var single = await s3.PutObjectAsync(
                    new PutObjectRequest { BucketName = Bucket, Key = key, InputStream = body, AutoCloseStream = false, UseChunkEncoding = false },
                    cancellationToken);
                return new ObjectPutResult(key, filled, Convert.ToHexStringLower(hash.GetHashAndReset()), TrimETag(single.ETag), 1);
            }

            var initiated = await s3.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest { BucketName = Bucket, Key = key }, cancellationToken);
            uploadId = initiated.UploadId;
            var parts = new List<PartETag>();
            long total = 0;
            while (filled > 0)
            {
                var partNumber = parts.Count + 1;
                using (var body = new MemoryStream(buffer, 0, filled, writable: false))
                {
                    var part = await s3.UploadPartAsync(
                        new UploadPartRequest
                        {
                            BucketName = Bucket,
                            Key = key,
                            UploadId = uploadId,
                            PartNumber = partNumber,
                            PartSize = filled,
                            InputStream = body,
                            UseChunkEncoding = false,
                        },
                        cancellationToken);
                    parts.Add(new PartETag(partNumber, part.ETag));
                }

                total += filled;
                filled = await content.ReadAtLeastAsync(buffer.AsMemory(0, _options.PartSizeBytes), _options.PartSizeBytes, throwOnEndOfStream: false, cancellationToken);
                hash.AppendData(buffer, 0, filled);
            }

            var completed = await s3.CompleteMultipartUploadAsync(
                new CompleteMultipartUploadRequest { BucketName = Bucket, Key = key, UploadId = uploadId, PartETags = parts },
                cancellationToken);
            uploadId = null;
            LogMultipart(logger, Bucket, key, total, parts.Count);
            return new ObjectPutResult(key, total, Convert.ToHexStringLower(hash.GetHashAndReset()), TrimETag(completed.ETag), parts.Count);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            if (uploadId is not null)
            {
                await AbortQuietlyAsync(key, uploadId);
            }
        }
    }

    private async Task AbortQuietlyAsync(string key, string uploadId)
    {
        try
        {
            // Not the caller's token: it may be the very cancellation that got us here.
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await s3.AbortMultipartUploadAsync(new AbortMultipartUploadRequest { BucketName = Bucket, Key = key, UploadId = uploadId }, timeout.Token);
        }
        catch (Exception ex) when (ex is AmazonServiceException or AmazonClientException or OperationCanceledException or HttpRequestException)
        {
            LogAbortFailed(logger, ex, Bucket, key, uploadId);
        }
    }

    private static bool IsNotFound(AmazonS3Exception ex) =>
        ex.StatusCode == HttpStatusCode.NotFound || ex.ErrorCode is "NoSuchKey" or "NotFound";

    private static string? TrimETag(string? etag) => etag?.Trim('"');

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Created bucket {Bucket}")]
    private static partial void LogBucketCreated(ILogger logger, string bucket);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Uploaded {Bucket}/{Key}: {Length} bytes in {PartCount} parts")]
    private static partial void LogMultipart(ILogger logger, string bucket, string key, long length, int partCount);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Could not abort multipart upload {UploadId} of {Bucket}/{Key}; the server will keep its parts until cleaned up")]
    private static partial void LogAbortFailed(ILogger logger, Exception exception, string bucket, string key, string uploadId);

    /// <summary>Owns the GetObject response so disposing the stream releases the HTTP connection.</summary>
    private sealed class ResponseStream(GetObjectResponse response) : Stream
    {
        private readonly Stream _inner = response.ResponseStream;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => response.ContentLength;

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            _inner.ReadAsync(buffer, offset, count, cancellationToken);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            _inner.ReadAsync(buffer, cancellationToken);

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                response.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
