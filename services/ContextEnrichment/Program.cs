using Platform.ContextEnrichment.Documents;
using Platform.ContextEnrichment.Features;
using Platform.Data;
using Platform.Inference.Routing;
using Platform.Redis;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddPlatformDataSource();
builder.AddPlatformRedisClient();

builder.Services.Configure<FeatureStoreOptions>(builder.Configuration.GetSection("Features"));
builder.Services.AddSingleton<FeatureStore>();
builder.Services.AddSingleton<DocumentIndex>();
builder.Services.Configure<EmbeddingOptions>(builder.Configuration.GetSection("Embedding"));
builder.Services.AddWorkerRouting();
builder.Services.AddSingleton<WorkerEmbedder>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<DocumentIndex>());
builder.Services.AddHealthChecks().AddCheck<DocumentIndex>("document-index");

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapServiceInfo("context-enrichment");
app.MapFeatureEndpoints();
app.MapDocumentEndpoints();

app.Run();
