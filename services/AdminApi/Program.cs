using Platform.AdminApi;
using Platform.Data;
using Platform.ModelRegistry;
using Platform.ObjectStore;
using Platform.OnnxRuntime;
using Platform.Redis;
using Platform.Rollouts;
using Platform.Tenancy;
using Platform.Tenancy.Admin;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddPlatformDataSource();
// Applied in the background at start; the "migrations" check keeps /health unready until the schema is current.
builder.AddPlatformMigrations(typeof(Program).Assembly, "Platform.AdminApi.Migrations.");
builder.AddPlatformRedisClient();
builder.AddPlatformRedisMemoryMonitor();
builder.AddPlatformObjectStore();
builder.AddPlatformObjectStoreBucketInitializer();
builder.AddPlatformModelRegistryWriter();
// Tenants, keys, budgets, prices and usage reports; the usage writer drains InferenceApi's Redis buffer into Postgres.
builder.AddPlatformTenancyAdmin();
builder.AddPlatformUsageWriter();
// Rollouts: the traffic split per model InferenceApi follows, and the controller that judges it against its guardrails.
builder.AddPlatformRolloutController();

// Uploads are validated by loading them with ONNX Runtime (CPU, one thread: a check, not serving).
builder.Services.AddSingleton(_ => new OrtEnvironment());
builder.Services.AddSingleton<ModelUpload>();
// A server being away is a 503 + Retry-After naming it, not a 500 (the framework's handler answers everything else).
builder.Services.AddExceptionHandler<DependencyFailureHandler>();
builder.Services.AddProblemDetails();

var app = builder.Build();

app.UseExceptionHandler();

app.MapDefaultEndpoints();
app.MapServiceInfo("admin-api");
app.MapRegistryEndpoints();
app.MapRepositoryEndpoints();
app.MapTenancyEndpoints();
app.MapRolloutEndpoints();

app.Run();
