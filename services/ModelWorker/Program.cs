using Platform.ObjectStore;
using Platform.Redis;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddPlatformObjectStore();
builder.AddPlatformRedis();

// ONNX Runtime: register the inference session and its "onnxruntime" health check here
// (builder.Services.AddHealthChecks().AddCheck<...>("onnxruntime")) so /health reports it with the others.

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapServiceInfo("model-worker");

app.Run();
