// Platform's composition: what runs, what it needs, who waits for whom.
// `dotnet run --project AppHost` runs it on this machine; `-- --publisher manifest|kubernetes
// --output-path <path>` publishes the same graph.
using Platform.Hosting;

var builder = DistributedApplication.CreateBuilder(args);

// Infrastructure
var postgres = builder.AddPostgres("postgres").WithDataVolume();
var platformDb = postgres.AddDatabase("platformdb");
var redis = builder.AddRedis("redis").WithDataVolume();
var objectStore = builder.AddMinio("objectstore").WithDataVolume();

// Secrets
var adminApiKey = builder.AddParameter("admin-api-key", secret: true);

// Services. AdminApi owns the schema (migrations at start); the others start alongside it and
// retry until its tables exist, so a cold start is not one service after another.
var adminApi = builder.AddProject<Projects.Platform_AdminApi>("admin-api")
    .WithReference(platformDb).WaitFor(platformDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(objectStore).WaitFor(objectStore)
    .WithEnvironment("Parameters__admin-api-key", adminApiKey)
    .WithHttpHealthCheck("/health").WithLivenessProbe("/alive")
    .WithExternalHttpEndpoints();

var modelWorker = builder.AddProject<Projects.Platform_ModelWorker>("model-worker")
    .WithReplicas(2)
    .WithReference(platformDb).WaitFor(platformDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(objectStore).WaitFor(objectStore)
    .WithHttpHealthCheck("/health").WithLivenessProbe("/alive");

var contextEnrichment = builder.AddProject<Projects.Platform_ContextEnrichment>("context-enrichment")
    .WithReference(platformDb).WaitFor(platformDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(modelWorker)
    .WithHttpHealthCheck("/health").WithLivenessProbe("/alive");

builder.AddProject<Projects.Platform_InferenceApi>("inference-api")
    .WithReference(platformDb).WaitFor(platformDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(adminApi)
    .WithReference(contextEnrichment)
    .WithReference(modelWorker)
    .WithHttpHealthCheck("/health").WithLivenessProbe("/alive")
    .WithExternalHttpEndpoints();

builder.Build().Run();
