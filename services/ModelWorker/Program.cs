using Platform.Batching;
using Platform.Data;
using Platform.ModelRegistry;
using Platform.ModelWorker;
using Platform.ObjectStore;
using Platform.Redis;
using Platform.WorkerDiscovery;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
// InferenceApi speaks HTTP/2 without TLS (prior knowledge); probes and humans use HTTP/1.1 on the same port.
builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenH2cAndHttp1(builder.Configuration));
builder.AddPlatformDataSource();
builder.AddPlatformObjectStore();
builder.AddPlatformRedisClient();
// Active versions follow the registry: Redis notifications plus a periodic reconcile against Postgres.
builder.AddPlatformActiveModelsView();

builder.Services.AddOptions<WorkerOptions>().BindConfiguration(WorkerOptions.SectionName);
builder.AddPlatformOnnxRuntime();
builder.Services.AddSingleton<BatcherTelemetry>();
builder.Services.AddSingleton<ModelArtifactCache>();
builder.Services.AddSingleton<ModelHost>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<ModelHost>());
builder.Services.AddSingleton(WorkerIdentity.From(builder.Configuration));
// Callers balance across replicas themselves: each replica announces its own address (see libs/Platform.WorkerDiscovery).
builder.Services.AddWorkerAnnouncement();

// onnxruntime (AddPlatformOnnxRuntime): version and live execution provider; models: per-version load state.
builder.Services.AddHealthChecks()
    .AddCheck<ModelsHealthCheck>("models");

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapServiceInfo("model-worker");
app.MapInferenceEndpoints();

app.Run();
