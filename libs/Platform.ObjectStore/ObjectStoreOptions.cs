using System.Data.Common;

namespace Platform.ObjectStore;

/// <summary>Object store settings, bound from configuration section <c>ObjectStore</c>.</summary>
public sealed class ObjectStoreOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "ObjectStore";

    /// <summary>Bucket name.</summary>
    public string Bucket { get; set; } = "models";

    /// <summary>Seekable sources up to this size go as one PUT; anything larger (or unseekable and larger than a part) goes multipart.</summary>
    public long MultipartThresholdBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Multipart part size, also the most an upload ever holds in memory (S3 requires at least 5 MiB).</summary>
    public int PartSizeBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>Region used for request signing; MinIO and s3rver accept any, S3 wants the bucket's.</summary>
    public string Region { get; set; } = "us-east-1";

    /// <summary>
    /// How long one attempt of a request to the store (a PUT, one part, a GET's response headers) may take; with one
    /// retry, a store that accepts connections but does not answer fails a call after about twice this, instead of
    /// holding uploads and model loads for the SDK's 100 s per attempt and three attempts. 20 s moves a 64 MB PUT (the
    /// largest single one; bigger files go in 16 MB parts) at 3.2 MB/s.
    /// </summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(20);
}

/// <summary>
/// Parsed Aspire MinIO-style connection string: <c>Endpoint=http://host:port;AccessKey=...;SecretKey=...</c>.
/// </summary>
/// <param name="Endpoint">Service URL.</param>
/// <param name="AccessKey">Access key id.</param>
/// <param name="SecretKey">Secret access key.</param>
public sealed record ObjectStoreConnection(Uri Endpoint, string AccessKey, string SecretKey)
{
    /// <summary>Parses the connection string; keys are case-insensitive.</summary>
    /// <exception cref="FormatException">A key is missing or the endpoint is not an absolute http(s) URI.</exception>
    public static ObjectStoreConnection Parse(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        var parts = new DbConnectionStringBuilder { ConnectionString = connectionString };

        string Require(string name) =>
            parts.TryGetValue(name, out var value) && value is string s && !string.IsNullOrWhiteSpace(s)
                ? s
                : throw new FormatException($"Object store connection string has no '{name}' (expected Endpoint=...;AccessKey=...;SecretKey=...).");

        var endpoint = Require("Endpoint");
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new FormatException($"Object store endpoint '{endpoint}' is not an absolute http(s) URI.");
        }

        return new ObjectStoreConnection(uri, Require("AccessKey"), Require("SecretKey"));
    }

    /// <summary>Keeps the secret out of logs.</summary>
    public override string ToString() => $"ObjectStoreConnection {{ Endpoint = {Endpoint}, AccessKey = {AccessKey} }}";
}
