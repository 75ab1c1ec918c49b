using Microsoft.AspNetCore.Http.Json;
using Platform.Data;
using Platform.Inference.Routing;
using Platform.InferenceApi.Serving;
using Platform.ModelRegistry;
using Platform.ObjectStore;
using Platform.Redis;
using Platform.Tenancy;
using Platform.Tenancy.Enforcement;
using Platform.InferenceApi.Tenancy;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
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
builder.AddPlatformTenancy();
builder.Services.AddSingleton<TenancyTelemetry>();
builder.Services.AddSingleton<KeyUsageTracker>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<KeyUsageTracker>());

builder.Services.AddOptions<InferenceApiOptions>().BindConfiguration(InferenceApiOptions.SectionName);
builder.Services.AddWorkerRouting();
builder.Services.AddSingleton<ServedModelCatalog>();
builder.Services.AddSingleton<ResponseCache>();
builder.Services.AddSingleton<InferenceMetrics>();
builder.AddFeatureEnrichment();
builder.Services.AddSingleton<InferenceHandler>();
builder.Services.Configure<JsonOptions>(o =>
{
    o.SerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower;
    o.SerializerOptions.Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
});
builder.WebHost.ConfigureKestrel((context, kestrel) =>
    kestrel.Limits.MaxRequestBodySize = context.Configuration.GetValue($"{InferenceApiOptions.SectionName}:{nameof(InferenceApiOptions.MaxRequestBytes)}", new InferenceApiOptions().MaxRequestBytes) + 1);

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapServiceInfo("inference-api");
app.UseMiddleware<TenantEnforcementMiddleware>();
app.MapOpenInference();

app.Run();
