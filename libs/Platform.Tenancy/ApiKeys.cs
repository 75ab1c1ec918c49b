using System.Security.Cryptography;
using System.Text;

namespace Platform.Tenancy;

/// <summary>A newly created key: the plaintext is shown once; only prefix, salt and hash are stored.</summary>
public sealed record NewApiKey(string Plaintext, string Prefix, byte[] Salt, byte[] Hash);

/// <summary>
/// API keys of the form <c>pk_&lt;prefix&gt;_&lt;secret&gt;</c>: the prefix (12 hex chars) finds the stored row, the
/// secret (32 random bytes, base64url) is checked against a salted SHA-256. Keys carry 256 bits of
/// entropy, so a fast hash is enough; a slow password hash would only add latency to every request.
/// </summary>
public static class ApiKeys
{
    private const string Scheme = "pk_";

    /// <summary>Creates a key.</summary>
    public static NewApiKey Generate()
    {
        var prefix = Convert.ToHexString(RandomNumberGenerator.GetBytes(6)).ToLowerInvariant();
        var secret = Base64Url(RandomNumberGenerator.GetBytes(32));
        var salt = RandomNumberGenerator.GetBytes(16);
        return new NewApiKey($"{Scheme}{prefix}_{secret}", prefix, salt, Hash(salt, secret));
    }

    /// <summary>Splits a presented key; false when it is not of this form.</summary>
    public static bool TryParse(string? key, out string prefix, out string secret)
    {
        prefix = secret = string.Empty;
        if (key is null || !key.StartsWith(Scheme, StringComparison.Ordinal) || key.Length != Scheme.Length + 12 + 1 + 43 || key[Scheme.Length + 12] != '_')
        {
            return false;
        }

        prefix = key.Substring(Scheme.Length, 12);
        secret = key[(Scheme.Length + 13)..];
        return prefix.All(char.IsAsciiHexDigitLower);
    }

    /// <summary>Constant-time check of a presented secret against the stored salt and hash.</summary>
    public static bool Verify(string secret, byte[] salt, byte[] hash)
    {
        ArgumentNullException.ThrowIfNull(secret);
        ArgumentNullException.ThrowIfNull(salt);
        // On the stack: every authenticated request verifies its key.
        Span<byte> input = stackalloc byte[salt.Length + secret.Length];
        Span<byte> computed = stackalloc byte[SHA256.HashSizeInBytes];
        salt.CopyTo(input);
        Encoding.ASCII.GetBytes(secret, input[salt.Length..]);
        SHA256.HashData(input, computed);
        return CryptographicOperations.FixedTimeEquals(computed, hash);
    }

    private static byte[] Hash(byte[] salt, string secret)
    {
        var secretBytes = Encoding.ASCII.GetBytes(secret);
        var input = new byte[salt.Length + secretBytes.Length];
        salt.CopyTo(input, 0);
        secretBytes.CopyTo(input, salt.Length);
        return SHA256.HashData(input);
    }

    private static string Base64Url(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
