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
        if (!TryParse(key.AsSpan(), out var prefixChars, out var secretChars))
        {
            prefix = secret = string.Empty;
            return false;
        }

        prefix = prefixChars.ToString();
        secret = secretChars.ToString();
        return true;
    }

    /// <summary>Splits a presented key without copying it (the request path: a cached key needs no strings); false when it is not of this form.</summary>
    public static bool TryParse(ReadOnlySpan<char> key, out ReadOnlySpan<char> prefix, out ReadOnlySpan<char> secret)
    {
        prefix = secret = default;
        if (!key.StartsWith(Scheme, StringComparison.Ordinal) || key.Length != Scheme.Length + 12 + 1 + 43 || key[Scheme.Length + 12] != '_')
        {
            return false;
        }

        prefix = key.Slice(Scheme.Length, 12);
        secret = key[(Scheme.Length + 13)..];
        return !prefix.ContainsAnyExcept(LowerHex);
    }

    private static readonly System.Buffers.SearchValues<char> LowerHex = System.Buffers.SearchValues.Create("0123456789abcdef");

    /// <summary>Constant-time check of a presented secret against the stored salt and hash.</summary>
    public static bool Verify(ReadOnlySpan<char> secret, byte[] salt, byte[] hash)
    {
        ArgumentNullException.ThrowIfNull(hash);
        // On the stack: every authenticated request verifies its key.
        Span<byte> computed = stackalloc byte[SHA256.HashSizeInBytes];
        Hash(salt, secret, computed);
        return CryptographicOperations.FixedTimeEquals(computed, hash);
    }

    private static byte[] Hash(byte[] salt, string secret)
    {
        var hash = new byte[SHA256.HashSizeInBytes];
        Hash(salt, secret, hash);
        return hash;
    }

    // SHA-256(salt + ASCII secret); a presented secret is a few dozen characters, so its bytes fit on the stack.
    private static void Hash(byte[] salt, ReadOnlySpan<char> secret, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(salt);
        var length = salt.Length + secret.Length;
        Span<byte> input = length <= 256 ? stackalloc byte[length] : new byte[length];
        salt.CopyTo(input);
        Encoding.ASCII.GetBytes(secret, input[salt.Length..]);
        SHA256.HashData(input, destination);
    }

    private static string Base64Url(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
