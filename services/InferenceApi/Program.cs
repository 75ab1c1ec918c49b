using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.AspNetCore.Http.Json;
using Platform.Data;
using Platform.Inference.Routing;
using Platform.InferenceApi.Grpc;
using Platform.InferenceApi.Serving;
using Platform.InferenceApi.Tenancy;
using Platform.ModelRegistry;
using Platform.ObjectStore;
using Platform.Redis;
using Platform.Rollouts;
using Platform.Tenancy;
using Platform.Tenancy.Enforcement;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
// Two listeners: GRPC_PORT speaks HTTP/2 only (inference.GRPCInferenceService and grpc.health.v1), every other port
// HTTP/1.1 (the REST protocol, health, metrics).
builder.UseGrpcPort();
builder.AddPlatformRedisClient();
builder.AddPlatformDataSource();

// The active models come from the registry's in-memory view (pub/sub + periodic reconcile): no database round trip
// per request. The registry library's store also serves AdminApi's writes and so wants an object store; this service
// only reads rows, so it gets one only if the AppHost happens to reference it.
if (!string.IsNullOrWhiteSpace(builder.Configuration.GetConnectionString(ObjectStoreServiceCollectionExtensions.DefaultConnectionName)))
{
    builder.AddPlatformObjectStore();
}
else
{
    builder.Services.AddSingleton<IObjectStore, NoObjectStore>();
}

builder.AddPlatformActiveModelsView();
builder.AddPlatformRolloutView();
builder.AddPlatformTenancy();
builder.Services.AddSingleton<TenancyTelemetry>();
builder.Services.AddSingleton<KeyUsageTracker>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<KeyUsageTracker>());
builder.Services.AddOptions<KeyGuessingOptions>().BindConfiguration(KeyGuessingOptions.SectionName);
builder.Services.AddSingleton<KeyGuessingLimiter>();
builder.Services.AddSingleton<InferenceEnforcement>();
// The guessing limit counts per client address: behind an ingress that is X-Forwarded-For, believed only from loopback
// (the default) and the networks in InferenceApi:TrustedProxies (e.g. the ingress controller's pod network).
builder.Services.Configure<ForwardedHeadersOptions>(forwarded =>
{
    forwarded.ForwardedHeaders = ForwardedHeaders.XForwardedFor;
    foreach (var network in builder.Configuration.GetSection("InferenceApi:TrustedProxies").Get<string[]>() ?? [])
    {
        forwarded.KnownIPNetworks.Add(System.Net.IPNetwork.Parse(network));
    }
});

builder.Services.AddOptions<InferenceApiOptions>().BindConfiguration(InferenceApiOptions.SectionName);
builder.Services.AddOptions<ModelRepositoryOptions>().BindConfiguration(ModelRepositoryOptions.SectionName);
builder.Services.AddWorkerRouting();
builder.Services.AddSingleton<ServedModelCatalog>();
builder.Services.AddSingleton<ResponseCache>();
builder.Services.AddSingleton<InferenceStatisticsStore>();
builder.Services.AddSingleton<InferenceMetrics>();
builder.AddFeatureEnrichment();
builder.Services.AddSingleton<ShadowTraffic>();
builder.Services.AddSingleton<InferencePipeline>();
builder.Services.AddSingleton<InferenceHandler>();
builder.Services.AddSingleton<ModelStatisticsService>();
builder.Services.AddHttpClient(ModelRepository.HttpClientName);
builder.Services.AddSingleton<ModelRepository>();
builder.Services.Configure<JsonOptions>(o =>
{
    o.SerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower;
    o.SerializerOptions.Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
});
var maxRequestBytes = builder.Configuration.GetValue($"{InferenceApiOptions.SectionName}:{nameof(InferenceApiOptions.MaxRequestBytes)}", new InferenceApiOptions().MaxRequestBytes);
builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = maxRequestBytes + 1);
builder.Services.AddGrpc(grpc =>
{
    // The same request size limit as REST; a larger message is RESOURCE_EXHAUSTED.
    grpc.MaxReceiveMessageSize = (int)Math.Min(int.MaxValue, maxRequestBytes);
    grpc.MaxSendMessageSize = null;
});
// grpc.health.v1 answers from the same health checks as /health.
builder.Services.AddGrpcHealthChecks();
// Server reflection: grpcurl, Postman and other generic clients find the services and their messages without the .proto files.
builder.Services.AddGrpcReflection();
// Triton's HTTP clients can compress request bodies (Content-Encoding gzip or deflate); the framework's middleware
// decompresses them, still bounded by the body size limit, and InferenceHandler refuses any coding it left in place.
builder.Services.AddRequestDecompression();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapServiceInfo("inference-api");
app.UseForwardedHeaders();
app.UseRequestDecompression();
app.UseMiddleware<TenantEnforcementMiddleware>();
app.MapOpenInference();
app.MapGrpcService<OpenInferenceGrpcService>();
app.MapGrpcHealthChecksService();
app.MapGrpcReflectionService();

app.Run();
