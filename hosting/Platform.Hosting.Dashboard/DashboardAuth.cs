using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Platform.Hosting.Dashboard;

/// <summary>
/// Who may use the dashboard: browsers that logged in with the run's token (session cookie), API callers with
/// <c>Authorization: Bearer &lt;token&gt;</c>, and OTLP senders with the API key the AppHost gave them.
/// </summary>
public sealed class DashboardAuth
{
    /// <summary>Session cookie name.</summary>
    public const string CookieName = "platform_dashboard_session";

    /// <summary>Header carrying the OTLP API key (as Aspire's dashboard).</summary>
    public const string OtlpApiKeyHeader = "x-otlp-api-key";

    /// <summary>Environment variable that fixes the browser token.</summary>
    public const string TokenEnvironmentVariable = "PLATFORM_DASHBOARD_TOKEN";

    private readonly ConcurrentDictionary<string, DateTimeOffset> _sessions = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;

    /// <summary>Creates the run's secrets.</summary>
    public DashboardAuth(IOptions<DashboardOptions> options, TimeProvider time)
    {
        _time = time;
        BrowserToken = NonEmpty(options.Value.BrowserToken) ?? NonEmpty(Environment.GetEnvironmentVariable(TokenEnvironmentVariable)) ?? NewSecret();
        OtlpApiKey = NonEmpty(options.Value.OtlpApiKey) ?? NewSecret();
    }

    /// <summary>The browser token (<c>/login?t=</c>, bearer).</summary>
    public string BrowserToken { get; }

    /// <summary>The OTLP API key.</summary>
    public string OtlpApiKey { get; }

    /// <summary>The value of <c>OTEL_EXPORTER_OTLP_HEADERS</c> given to services.</summary>
    public string OtlpHeaders => $"{OtlpApiKeyHeader}={OtlpApiKey}";

    /// <summary>How long a browser session lasts.</summary>
    public TimeSpan SessionLifetime { get; } = TimeSpan.FromDays(1);

    /// <summary>True when <paramref name="token"/> is the browser token (constant-time).</summary>
    public bool IsBrowserToken(string? token) => Equal(token, BrowserToken);

    /// <summary>True when <paramref name="key"/> is the OTLP API key (constant-time).</summary>
    public bool IsOtlpApiKey(string? key) => Equal(key, OtlpApiKey);

    /// <summary>Starts a browser session; returns the cookie value.</summary>
    public string CreateSession()
    {
        var id = NewSecret();
        _sessions[id] = _time.GetUtcNow() + SessionLifetime;
        return id;
    }

    /// <summary>True for a live session cookie.</summary>
    public bool IsSession(string? cookie)
    {
        if (string.IsNullOrEmpty(cookie) || !_sessions.TryGetValue(cookie, out var expires))
        {
            return false;
        }

        if (expires > _time.GetUtcNow())
        {
            return true;
        }

        _sessions.TryRemove(cookie, out _);
        return false;
    }

    /// <summary>Ends a session.</summary>
    public void EndSession(string? cookie)
    {
        if (cookie is not null)
        {
            _sessions.TryRemove(cookie, out _);
        }
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static string NewSecret() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    private static bool Equal(string? candidate, string secret) =>
        candidate is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(candidate), Encoding.UTF8.GetBytes(secret));
}
