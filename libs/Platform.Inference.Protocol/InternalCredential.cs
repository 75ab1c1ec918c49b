using System.Security.Cryptography;
using System.Text;

namespace Platform.Inference.Protocol;

/// <summary>
/// The credential of the internal hop (InferenceApi and ContextEnrichment → model workers): a secret the AppHost
/// generates (parameter <c>internal-api-key</c>, in Kubernetes an ExternalSecret) and hands to the services as
/// <c>Parameters:internal-api-key</c>. Callers send it on every call as <c>authorization: Bearer &lt;key&gt;</c>; the worker
/// compares it in constant time. Health, liveness and metrics stay open for probes and scrapes.
/// </summary>
public static class InternalCredential
{
    /// <summary>Configuration key of the secret (environment <c>Parameters__internal-api-key</c>).</summary>
    public const string ConfigurationKey = "Parameters:internal-api-key";

    /// <summary>Header (gRPC metadata) that carries it.</summary>
    public const string Header = "authorization";

    /// <summary>Scheme in front of the key.</summary>
    public const string Scheme = "Bearer ";

    /// <summary>Shortest key a service accepts: the AppHost generates 32 letters and digits.</summary>
    public const int MinimumLength = 16;

    /// <summary>The header value for <paramref name="key"/>.</summary>
    public static string HeaderValue(string key) => Scheme + key;

    /// <summary>
    /// Whether the <c>authorization</c> value <paramref name="presented"/> carries <paramref name="expected"/>. Both sides are
    /// hashed first, so the comparison takes the same time whatever the lengths or the first differing byte.
    /// </summary>
    public static bool Matches(string? presented, string expected)
    {
        ArgumentException.ThrowIfNullOrEmpty(expected);
        if (presented is null || !presented.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        Span<byte> given = stackalloc byte[SHA256.HashSizeInBytes];
        Span<byte> wanted = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(presented[Scheme.Length..].Trim()), given);
        SHA256.HashData(Encoding.UTF8.GetBytes(expected), wanted);
        return CryptographicOperations.FixedTimeEquals(given, wanted);
    }
}
