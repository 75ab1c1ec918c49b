using Platform.Batching;
using Platform.Data;
using Platform.ModelRegistry;
using Platform.ModelWorker;
using Platform.ObjectStore;
using Platform.Redis;
using Platform.WorkerDiscovery;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
// Two listeners: GRPC_PORT speaks HTTP/2 only (the inference hop from InferenceApi), every other port HTTP/1.1
// (health, metrics, the JSON model listing).
builder.UseGrpcPort();
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
builder.Services.AddSingleton<ModelSignatures>();
// Only holders of the AppHost's internal credential may call inference or list models (probes and scrapes stay open).
builder.Services.AddSingleton<InternalKeyVerifier>();

var maxMessageBytes = (int)Math.Min(int.MaxValue, builder.Configuration.GetValue($"{WorkerOptions.SectionName}:{nameof(WorkerOptions.MaxRequestBodyBytes)}", new WorkerOptions().MaxRequestBodyBytes));
builder.Services.AddGrpc(grpc =>
{
    grpc.MaxReceiveMessageSize = maxMessageBytes;
    grpc.MaxSendMessageSize = null;
}).AddServiceOptions<WorkerGrpcService>(service => service.Interceptors.Add<InternalKeyInterceptor>());
// grpc.health.v1 answers from the same health checks as /health.
builder.Services.AddGrpcHealthChecks();

// onnxruntime (AddPlatformOnnxRuntime): version and live execution provider; models: per-version load state.
builder.Services.AddHealthChecks()
    .AddCheck<ModelsHealthCheck>("models");

var app = builder.Build();
// Fails start-up without the credential rather than serving without one.
app.Services.GetRequiredService<InternalKeyVerifier>();

app.MapDefaultEndpoints();
app.MapServiceInfo("model-worker");
app.MapInferenceEndpoints();
app.MapGrpcService<WorkerGrpcService>();
app.MapGrpcHealthChecksService();

app.Run();
