using System.Buffers;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using Google.Rpc;
using Grpc.Core;
using Grpc.Net.Client;
using Platform.Inference.OpenInference;
using Platform.Inference.OpenInference.Grpc;
using Platform.Inference.Protocol;
using Platform.TestSupport;

namespace Platform.Governance.Tests;

/// <summary>
/// Governance over gRPC is REST's: the same keys, model access, rate limit and budget (shared across transports and
/// replicas), the same refusals as gRPC statuses with retry delays, and exactly one usage record per inference.
/// </summary>
public sealed class GrpcParityTests(GovernanceFixture fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static InferTensor Input(int seed) =>
        new("input", DataType.Fp32, [1, 16], MemoryMarshal.AsBytes(Enumerable.Range(0, 16).Select(i => (float)((i + seed) % 7) / 7f).ToArray().AsSpan()).ToArray());

    private GRPCInferenceService.GRPCInferenceServiceClient Client(int replica, out GrpcChannel channel)
    {
        channel = GrpcChannel.ForAddress(fixture.App.ReplicaAddress("inference-api", replica, "grpc"));
        return new GRPCInferenceService.GRPCInferenceServiceClient(channel);
    }

    private static CallOptions Bearer(string? key) =>
        new(headers: key is null ? [] : new Metadata { { "authorization", $"Bearer {key}" } }, deadline: DateTime.UtcNow.AddSeconds(60), cancellationToken: Ct);

    [Fact]
    public async Task TheSameRequestOverRestBinaryAndGrpcGivesIdenticalOutputsAndOneUsageRecordEach()
    {
        using (var price = await fixture.Admin.PutAsJsonAsync($"/api/prices/{GovernanceFixture.Model}", new { perInputElement = 0.001, currency = "USD" }, Ct))
        {
            Assert.True(price.IsSuccessStatusCode, await price.Content.ReadAsStringAsync(Ct));
        }

        try
        {
            var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"parity-{Guid.NewGuid():N}"[..20], [GovernanceFixture.Model],
                attribution: new { team = "grpc-team", project = "parity", environment = "test" }, cancellationToken: Ct);
            using var rest = fixture.Inference(0).WithApiKey(tenant.Key);
            await GovernanceFixture.WaitServedAsync(rest, GovernanceFixture.Model, Ct);
            var before = (await fixture.SettledUsageAsync(tenant.Id, 1, Ct)).Count;

            var input = Input(3);
            var buffer = new ArrayBufferWriter<byte>();
            var jsonLength = InferClientCodec.WriteRequest(buffer, [input], TensorEncoding.Binary, parameters: new InferRequestParameters { BinaryDataOutput = true }, id: "parity-rest");
            using var content = new ByteArrayContent(buffer.WrittenSpan.ToArray());
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            content.Headers.Add(InferRequestReader.HeaderContentLengthHeader, jsonLength.ToString(System.Globalization.CultureInfo.InvariantCulture));
            using var response = await rest.PostAsync($"/v2/models/{GovernanceFixture.Model}/infer", content, Ct);
            var body = await response.Content.ReadAsByteArrayAsync(Ct);
            Assert.True(response.IsSuccessStatusCode, System.Text.Encoding.UTF8.GetString(body));
            var restOutput = InferClientCodec.ReadResponse(body, int.Parse(response.Headers.GetValues(InferRequestReader.HeaderContentLengthHeader).Single(), System.Globalization.CultureInfo.InvariantCulture))
                .Outputs[0].Data.ToArray();

            // Over gRPC on the other replica, with the key in x-api-key this time.
            var client = Client(1, out var channel);
            using (channel)
            {
                var answer = await client.ModelInferAsync(GrpcInferCodec.WriteRequest(GovernanceFixture.Model, null, [input], id: "parity-grpc"),
                    new CallOptions(headers: new Metadata { { "x-api-key", tenant.Key } }, deadline: DateTime.UtcNow.AddSeconds(60), cancellationToken: Ct));
                Assert.Equal(restOutput, GrpcInferCodec.ReadResponse(answer).Outputs[0].Data.ToArray());
            }

            var usage = await fixture.SettledUsageAsync(tenant.Id, before + 2, Ct);
            var rows = usage.Where(u => u.RequestId is "parity-rest" or "parity-grpc").ToList();
            Assert.Equal(["parity-grpc", "parity-rest"], rows.Select(r => r.RequestId).Order());
            Assert.All(rows, r => Assert.Equal(200, r.Status));
            // 16 input elements at 0.001 each, charged the same whatever the transport.
            Assert.All(rows, r => Assert.Equal(0.016m, r.Cost));

            // The gRPC call's attribution reached the GenAI metrics like REST's.
            using var metrics = fixture.Inference(1);
            var text = await metrics.GetStringAsync("/metrics", Ct);
            Assert.Contains(text.Split('\n'), l => l.StartsWith("gen_ai_client_operation_duration", StringComparison.Ordinal)
                && l.Contains($"platform_tenant=\"{tenant.Name}\"", StringComparison.Ordinal) && l.Contains("platform_team=\"grpc-team\"", StringComparison.Ordinal));
        }
        finally
        {
            using var reset = await fixture.Admin.DeleteAsync($"/api/prices/{GovernanceFixture.Model}", Ct);
        }
    }

    [Fact]
    public async Task KeysAndModelAccessAreRefusedWithRestsMessagesAsGrpcStatuses()
    {
        var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"gkeys-{Guid.NewGuid():N}"[..20], [GovernanceFixture.Model], cancellationToken: Ct);
        var client = Client(0, out var channel);
        using var _ = channel;
        var request = GrpcInferCodec.WriteRequest(GovernanceFixture.Model, null, [Input(1)]);
        await WaitServedAsync(client, tenant.Key, request);

        var none = await Assert.ThrowsAsync<RpcException>(async () => await client.ModelInferAsync(request, Bearer(null)));
        Assert.Equal(StatusCode.Unauthenticated, none.StatusCode);
        Assert.Contains("authorization: an API key is required", none.Status.Detail, StringComparison.Ordinal);

        var other = await Assert.ThrowsAsync<RpcException>(async () => await client.ModelInferAsync(
            GrpcInferCodec.WriteRequest(GovernanceFixture.OtherModel, null, [Input(1)]), Bearer(tenant.Key)));
        Assert.Equal((StatusCode.PermissionDenied, $"model: tenant '{tenant.Name}' may not use model '{GovernanceFixture.OtherModel}'"), (other.StatusCode, other.Status.Detail));
        var metadata = await Assert.ThrowsAsync<RpcException>(async () => await client.ModelMetadataAsync(new ModelMetadataRequest { Name = GovernanceFixture.OtherModel }, Bearer(tenant.Key)));
        Assert.Equal(StatusCode.PermissionDenied, metadata.StatusCode);

        using (var revoke = await fixture.Admin.PostAsync($"/api/tenants/{tenant.Id}/keys/{tenant.KeyId}/revoke", null, Ct))
        {
            Assert.True(revoke.IsSuccessStatusCode, await revoke.Content.ReadAsStringAsync(Ct));
        }

        // The revocation reaches every replica through AdminApi's change notification, not at once.
        var revoked = await Waits.UntilAsync(
            () => Assert.ThrowsAnyAsync<RpcException>(async () =>
            {
                await client.ModelInferAsync(request, Bearer(tenant.Key));
                throw new RpcException(new global::Grpc.Core.Status(StatusCode.OK, "still served"));
            }),
            e => e.StatusCode == StatusCode.PermissionDenied, TimeSpan.FromSeconds(5), "the revoked key refused over gRPC", Ct);

        Assert.Equal(StatusCode.PermissionDenied, revoked.StatusCode);
        Assert.Equal($"authorization: API key '{tenant.Key.Split('_')[1]}' of tenant '{tenant.Name}' is revoked", revoked.Status.Detail);
    }

    [Fact]
    public async Task TheRateLimitIsSharedByBothTransportsAndARefusalCarriesItsRetryDelay()
    {
        // Three requests of burst and a refill so slow that none comes back during the test.
        var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"grate-{Guid.NewGuid():N}"[..20], rateLimit: (0.001, 3), cancellationToken: Ct);
        var warm = await PlatformTenants.CreateAsync(fixture.Admin, $"gwarm-{Guid.NewGuid():N}"[..20], cancellationToken: Ct);
        var client = Client(0, out var channel);
        using var _ = channel;
        await WaitServedAsync(client, warm.Key, GrpcInferCodec.WriteRequest(GovernanceFixture.Model, null, [Input(1)]));

        using var rest = fixture.Inference(1).WithApiKey(tenant.Key);
        var statuses = new List<int>();
        for (var i = 0; i < 2; i++)
        {
            using var response = await rest.PostAsync($"/v2/models/{GovernanceFixture.Model}/infer", GovernanceFixture.InferBody($"grate-rest-{i}"), Ct);
            statuses.Add((int)response.StatusCode);
        }

        var allowed = await client.ModelInferAsync(GrpcInferCodec.WriteRequest(GovernanceFixture.Model, null, [Input(2)], id: "grate-grpc-0"), Bearer(tenant.Key));
        Assert.Equal("grate-grpc-0", allowed.Id);
        var refused = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.ModelInferAsync(GrpcInferCodec.WriteRequest(GovernanceFixture.Model, null, [Input(3)], id: "grate-grpc-1"), Bearer(tenant.Key)));

        Assert.Equal([200, 200], statuses);
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.StartsWith("rate limit: API key", refused.Status.Detail, StringComparison.Ordinal);
        Assert.True(int.Parse(refused.Trailers.GetValue("retry-after")!, System.Globalization.CultureInfo.InvariantCulture) >= 1);
        var retryInfo = refused.GetRpcStatus()!.GetDetail<RetryInfo>();
        Assert.True(retryInfo.RetryDelay.ToTimeSpan() > TimeSpan.Zero, $"RetryInfo {retryInfo}");

        // Four attempts, four records: three answered, one refused.
        var usage = await fixture.SettledUsageAsync(tenant.Id, 4, Ct);
        Assert.Equal(4, usage.Count);
        Assert.Equal(3, usage.Count(u => u.Status == 200));
        Assert.Single(usage, u => u.Status == 429 && u.RequestId is null);
    }

    [Fact]
    public async Task AnInferenceServedWhileItsAdmissionIsOnItsWayIsStillRefusedWhenTheBucketRanDry()
    {
        // Burst 40: after one admitted request replica 0 remembers 39 tokens, enough to serve the key's next request while
        // its admission is on its way. Another replica then empties the bucket (here: Redis directly), so that admission
        // refuses: the answer already computed must not go out, on either transport.
        var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"gover-{Guid.NewGuid():N}"[..20], rateLimit: (0.001, 40), cancellationToken: Ct);
        using var rest = fixture.Inference(0).WithApiKey(tenant.Key);
        var client = Client(0, out var channel);
        using var _ = channel;
        var bucket = $"ratelimit:{tenant.KeyId:N}";
        var refusedBefore = await OverlapsRefusedAsync();

        using (var admitted = await rest.PostAsync($"/v2/models/{GovernanceFixture.Model}/infer", GovernanceFixture.InferBody("gover-rest-0"), Ct))
        {
            Assert.Equal(System.Net.HttpStatusCode.OK, admitted.StatusCode);
        }

        await DryAsync(bucket);
        using (var refused = await rest.PostAsync($"/v2/models/{GovernanceFixture.Model}/infer", GovernanceFixture.InferBody("gover-rest-1"), Ct))
        {
            var body = await refused.Content.ReadAsStringAsync(Ct);
            Assert.Equal(System.Net.HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.Contains("rate limit: API key", body, StringComparison.Ordinal);
            Assert.DoesNotContain("outputs", body, StringComparison.Ordinal);
            Assert.NotNull(refused.Headers.RetryAfter);
        }

        // A full bucket again, one admitted gRPC call (replica 0 remembers 39 tokens once more), then dry.
        await fixture.Redis.GetDatabase().KeyDeleteAsync(bucket);
        var allowed = await client.ModelInferAsync(GrpcInferCodec.WriteRequest(GovernanceFixture.Model, null, [Input(4)], id: "gover-grpc-0"), Bearer(tenant.Key));
        Assert.Equal("gover-grpc-0", allowed.Id);
        await DryAsync(bucket);
        var refusedCall = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.ModelInferAsync(GrpcInferCodec.WriteRequest(GovernanceFixture.Model, null, [Input(5)], id: "gover-grpc-1"), Bearer(tenant.Key)));
        Assert.Equal(StatusCode.ResourceExhausted, refusedCall.StatusCode);
        Assert.StartsWith("rate limit: API key", refusedCall.Status.Detail, StringComparison.Ordinal);

        // Both refusals were of requests served ahead of their admission, and each attempt is one usage record.
        Assert.True(await OverlapsRefusedAsync() - refusedBefore >= 2, "two refused overlapped admissions counted");
        var usage = await fixture.SettledUsageAsync(tenant.Id, 4, Ct);
        Assert.Equal(4, usage.Count);
        Assert.Equal(2, usage.Count(u => u.Status == 200));
        Assert.Equal(2, usage.Count(u => u.Status == 429));
    }

    // No tokens, and a last refill in the far future so none comes back.
    private Task DryAsync(string bucket) =>
        fixture.Redis.GetDatabase().HashSetAsync(bucket, [new StackExchange.Redis.HashEntry("tokens", "0"), new StackExchange.Redis.HashEntry("ts", "99999999999999999")]);

    private async Task<double> OverlapsRefusedAsync()
    {
        using var metrics = fixture.Inference(0);
        var scrape = await metrics.GetStringAsync("/metrics", Ct);
        return PrometheusText.Value(scrape, "platform_inference_api_admission_overlapped_total", ("outcome", "refused")) ?? 0;
    }

    [Fact]
    public async Task AnExhaustedBudgetIsResourceExhaustedNamingTheBudgetAndWhenItResets()
    {
        var model = GovernanceFixture.OtherModel;
        using (var price = await fixture.Admin.PutAsJsonAsync($"/api/prices/{model}", new { per1kInferences = 1000, currency = "USD" }, Ct))
        {
            Assert.True(price.IsSuccessStatusCode, await price.Content.ReadAsStringAsync(Ct));
        }

        try
        {
            var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"gbudget-{Guid.NewGuid():N}"[..20], [model], cancellationToken: Ct);
            using (var budget = await fixture.Admin.PutAsJsonAsync($"/api/tenants/{tenant.Id}/budget", new { period = "daily", limit = 2, currency = "USD" }, Ct))
            {
                Assert.True(budget.IsSuccessStatusCode, await budget.Content.ReadAsStringAsync(Ct));
            }

            var client = Client(1, out var channel);
            using var _ = channel;
            using var rest = fixture.Inference(0).WithApiKey(tenant.Key);
            using (var first = await rest.PostAsync($"/v2/models/{model}/infer", GovernanceFixture.InferBody("gbudget-rest"), Ct))
            {
                Assert.True(first.IsSuccessStatusCode, await first.Content.ReadAsStringAsync(Ct));
            }

            await client.ModelInferAsync(GrpcInferCodec.WriteRequest(model, null, [Input(1)], id: "gbudget-grpc"), Bearer(tenant.Key));
            var refused = await Assert.ThrowsAsync<RpcException>(async () =>
                await client.ModelInferAsync(GrpcInferCodec.WriteRequest(model, null, [Input(2)]), Bearer(tenant.Key)));

            Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
            Assert.Contains("daily budget of 2 USD", refused.Status.Detail, StringComparison.Ordinal);
            Assert.Contains($"resets at {DateTime.UtcNow.Date.AddDays(1):yyyy-MM-dd}T00:00:00Z", refused.Status.Detail, StringComparison.Ordinal);
            Assert.True(refused.GetRpcStatus()!.GetDetail<RetryInfo>().RetryDelay.ToTimeSpan() > TimeSpan.FromMinutes(1) || DateTime.UtcNow.TimeOfDay > TimeSpan.FromHours(23.98));

            var usage = await fixture.SettledUsageAsync(tenant.Id, 3, Ct);
            Assert.Equal(2m, usage.Sum(u => u.Cost));
            Assert.Equal(1, usage.Count(u => u.Status == 429 && u.Cost == 0));
        }
        finally
        {
            using var reset = await fixture.Admin.DeleteAsync($"/api/prices/{model}", Ct);
        }
    }

    [Fact]
    public async Task WhileRedisIsDownGrpcInferenceIsUnavailableWithARetryDelayAndNothingIsRecorded()
    {
        var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"gredis-{Guid.NewGuid():N}"[..20], cancellationToken: Ct);
        var client = Client(0, out var channel);
        using var _ = channel;
        await WaitServedAsync(client, tenant.Key, GrpcInferCodec.WriteRequest(GovernanceFixture.Model, null, [Input(1)]));

        await fixture.App.StopAsync("redis", cancellationToken: Ct);
        try
        {
            var refused = await Assert.ThrowsAsync<RpcException>(async () =>
                await client.ModelInferAsync(GrpcInferCodec.WriteRequest(GovernanceFixture.Model, null, [Input(2)], id: "gredis-down"), Bearer(tenant.Key)));
            Assert.Equal((StatusCode.Unavailable, "rate limiter and usage ledger are unavailable; retry shortly"), (refused.StatusCode, refused.Status.Detail));
            Assert.Equal("1", refused.Trailers.GetValue("retry-after"));
            Assert.Equal(TimeSpan.FromSeconds(1), refused.GetRpcStatus()!.GetDetail<RetryInfo>().RetryDelay.ToTimeSpan());
        }
        finally
        {
            await fixture.App.StartAsync("redis", cancellationToken: Ct);
        }

        await WaitServedAsync(client, tenant.Key, GrpcInferCodec.WriteRequest(GovernanceFixture.Model, null, [Input(3)], id: "gredis-back"));
        var records = await fixture.SettledUsageAsync(tenant.Id, 2, Ct);
        Assert.DoesNotContain(records, r => r.RequestId == "gredis-down");
        Assert.Contains(records, r => r.RequestId == "gredis-back");
        await fixture.App.WaitForAllHealthyAsync(Ct);
    }

    private static Task WaitServedAsync(GRPCInferenceService.GRPCInferenceServiceClient client, string key, ModelInferRequest request) =>
        Waits.UntilAsync<Grpc.Core.Status?>(async () =>
        {
            try
            {
                await client.ModelInferAsync(request, Bearer(key));
                return null;
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.NotFound or StatusCode.Unavailable)
            {
                return ex.Status;
            }
        }, refusal => refusal is null, TimeSpan.FromSeconds(60), $"{request.ModelName} served over gRPC", Ct);
}
