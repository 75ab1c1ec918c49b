using System.Net;
using System.Security.Cryptography;
using Grpc.Core;
using Grpc.Net.Client;
using Platform.Inference.OpenInference.Grpc;
using Platform.TestSupport;

namespace Platform.Governance.Tests;

/// <summary>
/// Failed authentications are bounded per client address and per key prefix (InferenceApi:KeyGuessing, 20 a minute
/// each by default), counted in Redis so both InferenceApi replicas enforce one limit. Client addresses are told apart
/// by X-Forwarded-For, which InferenceApi believes from loopback (where Aspire's proxy and these tests connect from).
/// </summary>
public sealed class KeyGuessingTests(GovernanceFixture fixture)
{
    private const int Limit = 20;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task FailedKeysFromOneAddressAreLimitedAcrossReplicasWhileOtherClientsAreServed()
    {
        var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"guess-{Guid.NewGuid():N}"[..20], [GovernanceFixture.Model], cancellationToken: Ct);
        using (var warm = fixture.Inference(0).WithApiKey(tenant.Key))
        {
            await GovernanceFixture.WaitServedAsync(warm, GovernanceFixture.Model, Ct);
        }

        var attacker = RandomAddress();
        await WaitForFreshWindowAsync();
        // The guesses alternate between the replicas: each sees only half of them, the limit counts all.
        for (var i = 0; i < Limit; i++)
        {
            using var response = await InferAsync(i % 2, RandomKey(), attacker);
            Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"guess {i + 1}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(Ct)}");
        }

        for (var replica = 0; replica < 2; replica++)
        {
            using var refused = await InferAsync(replica, RandomKey(), attacker);
            var body = await refused.Content.ReadAsStringAsync(Ct);
            Assert.True(refused.StatusCode == HttpStatusCode.TooManyRequests, $"replica {replica}: {(int)refused.StatusCode} {body}");
            Assert.Contains("too many failed API keys from this client address (limit 20 a minute)", body, StringComparison.Ordinal);
            Assert.InRange(refused.Headers.RetryAfter!.Delta!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(60));
        }

        // A correct guess from the throttled address is not served either: the limit bounds guessing, not just the answer.
        using (var lucky = await InferAsync(0, tenant.Key, attacker))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, lucky.StatusCode);
        }

        // gRPC from the same address meets the same limit.
        using (var channel = GrpcChannel.ForAddress(fixture.App.ReplicaAddress("inference-api", 1, "grpc")))
        {
            var grpc = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
            var error = await Assert.ThrowsAsync<RpcException>(async () => await grpc.ModelMetadataAsync(new ModelMetadataRequest { Name = GovernanceFixture.Model },
                new CallOptions(new Metadata { { "authorization", $"Bearer {RandomKey()}" }, { "x-forwarded-for", attacker } }, DateTime.UtcNow.AddSeconds(30), cancellationToken: Ct)));
            Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
            Assert.NotNull(error.Trailers.GetValue("retry-after"));
        }

        // Everybody else is unaffected: the same tenant's key from its own address, on both replicas, and a wrong key
        // from another address is still just a 401.
        for (var replica = 0; replica < 2; replica++)
        {
            using var served = await InferAsync(replica, tenant.Key, RandomAddress());
            Assert.True(served.StatusCode == HttpStatusCode.OK, $"replica {replica}: {(int)served.StatusCode} {await served.Content.ReadAsStringAsync(Ct)}");
            using var direct = await InferAsync(replica, tenant.Key, forwardedFor: null);
            Assert.Equal(HttpStatusCode.OK, direct.StatusCode);
        }

        using (var stranger = await InferAsync(0, RandomKey(), RandomAddress()))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, stranger.StatusCode);
        }

        // The refusals are counted on the replicas' /metrics.
        double rejected = 0, throttled = 0;
        for (var replica = 0; replica < 2; replica++)
        {
            using var client = fixture.Inference(replica);
            var scrape = await client.GetStringAsync("/metrics", Ct);
            rejected += PrometheusText.Value(scrape, "platform_auth_failures_total", ("outcome", "rejected"), ("limit", "none")) ?? 0;
            throttled += (PrometheusText.Value(scrape, "platform_auth_failures_total", ("outcome", "throttled"), ("limit", "address")) ?? 0);
        }

        Assert.True(rejected >= Limit, $"rejected {rejected}");
        Assert.True(throttled >= 4, $"throttled {throttled}");
    }

    [Fact]
    public async Task GuessingOneKeysSecretFromManyAddressesIsLimitedPerPrefix()
    {
        var victim = await PlatformTenants.CreateAsync(fixture.Admin, $"victim-{Guid.NewGuid():N}"[..20], [GovernanceFixture.Model], cancellationToken: Ct);
        var bystander = await PlatformTenants.CreateAsync(fixture.Admin, $"bystander-{Guid.NewGuid():N}"[..20], [GovernanceFixture.Model], cancellationToken: Ct);
        using (var warm = fixture.Inference(0).WithApiKey(bystander.Key))
        {
            await GovernanceFixture.WaitServedAsync(warm, GovernanceFixture.Model, Ct);
        }

        var prefix = victim.Key[..16]; // "pk_" + 12 hex + "_"
        await WaitForFreshWindowAsync();
        var addresses = Enumerable.Range(0, Limit + 1).Select(_ => RandomAddress()).ToArray();
        for (var i = 0; i < Limit; i++)
        {
            using var response = await InferAsync(i % 2, prefix + RandomSecret(), addresses[i]);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        using (var refused = await InferAsync(1, prefix + RandomSecret(), addresses[Limit]))
        {
            var body = await refused.Content.ReadAsStringAsync(Ct);
            Assert.True(refused.StatusCode == HttpStatusCode.TooManyRequests, $"{(int)refused.StatusCode} {body}");
            Assert.Contains("too many failed attempts at this API key prefix (limit 20 a minute)", body, StringComparison.Ordinal);
            Assert.NotNull(refused.Headers.RetryAfter);
        }

        // The attacked key itself waits out the window (documented: the price of bounding a guess at its secret), on the
        // replica that saw the excess at once and on the other as soon as the news reaches it (Redis pub/sub).
        using (var locked = await InferAsync(1, victim.Key, RandomAddress()))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, locked.StatusCode);
        }

        var other = await Waits.UntilAsync(async () =>
        {
            using var response = await InferAsync(0, victim.Key, RandomAddress());
            return response.StatusCode;
        }, status => status == HttpStatusCode.TooManyRequests, TimeSpan.FromSeconds(10), "the attacked key refused by the other replica", Ct);
        Assert.Equal(HttpStatusCode.TooManyRequests, other);

        // ... while another tenant's key is served, even from the addresses that took part.
        for (var replica = 0; replica < 2; replica++)
        {
            using var served = await InferAsync(replica, bystander.Key, addresses[replica]);
            Assert.True(served.StatusCode == HttpStatusCode.OK, $"replica {replica}: {(int)served.StatusCode} {await served.Content.ReadAsStringAsync(Ct)}");
        }
    }

    private async Task<HttpResponseMessage> InferAsync(int replica, string key, string? forwardedFor)
    {
        using var client = fixture.Inference(replica);
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{GovernanceFixture.Model}/infer") { Content = GovernanceFixture.InferBody() };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        if (forwardedFor is not null)
        {
            request.Headers.Add("X-Forwarded-For", forwardedFor);
        }

        return await client.SendAsync(request, Ct);
    }

    // The limit counts in one-minute windows of the wall clock: a test that needs 21 attempts in one window starts early in one.
    private static async Task WaitForFreshWindowAsync()
    {
        while (DateTimeOffset.UtcNow.Second >= 30)
        {
            await Task.Delay(TimeSpan.FromSeconds(60 - DateTimeOffset.UtcNow.Second), Ct);
        }
    }

    // Documentation addresses (2001:db8::/32), unique per call.
    private static string RandomAddress() =>
        new IPAddress([0x20, 0x01, 0x0d, 0xb8, .. RandomNumberGenerator.GetBytes(12)]).ToString();

    private static string RandomKey() => $"pk_{Convert.ToHexString(RandomNumberGenerator.GetBytes(6)).ToLowerInvariant()}_{RandomSecret()}";

    private static string RandomSecret() =>
        Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
