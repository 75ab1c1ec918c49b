// Platform's composition: what runs, what it needs, who waits for whom. `dotnet run --project AppHost` runs it on this
// machine (native processes under Aspire's orchestrator, the Aspire dashboard on http://localhost:18888);
// `-- --publisher manifest --output-path aspire-manifest.json` publishes the same graph as Aspire's manifest.
using Platform.Hosting;

var builder = DistributedApplication.CreateBuilder(args);

// Infrastructure: native processes in run mode, Aspire's containers (and MinIO) in publish mode.
var platformDb = builder.AddPlatformPostgres("postgres", databaseName: "platformdb");
var redis = builder.AddPlatformRedis("redis");
var objectStore = builder.AddPlatformObjectStore("objectstore");

// Secrets: the admin key, and the internal credential the workers demand of their callers (InferenceApi, ContextEnrichment).
var adminApiKey = builder.AddPassword("admin-api-key", minLength: 32);
var internalApiKey = builder.AddPassword("internal-api-key", minLength: 32);

// Services. AdminApi owns the schema (migrations at start); the others start alongside it and retry until its tables
// exist, so a cold start is not one service after another.
var adminApi = builder.AddProject<Projects.Platform_AdminApi>("admin-api")
    .WithHttpEndpoint()
    .WithReferenceEnvironment(ReferenceEnvironmentInjectionFlags.ConnectionString | ReferenceEnvironmentInjectionFlags.ServiceDiscovery)
    .WithReference(platformDb).WaitFor(platformDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(objectStore).WaitFor(objectStore)
    .WithEnvironment("Parameters__admin-api-key", adminApiKey)
    .WithHttpHealthCheck("/health")
    .WithExternalHttpEndpoints();

// Services that serve gRPC get a second endpoint, "grpc", HTTP/2 only: its port arrives as GRPC_PORT and the services
// apply it with ServiceDefaults' UseGrpcPort (every other listener speaks HTTP/1.1). Pods listen on fixed target ports;
// run mode lets the orchestrator give each replica its own.
int? grpcTargetPort = builder.ExecutionContext.IsPublishMode ? 8081 : null;

const int WorkerReplicas = 2;
var modelWorker = builder.AddProject<Projects.Platform_ModelWorker>("model-worker")
    .WithHttpEndpoint()
    .WithGrpcEndpoint(grpcTargetPort)
    .WithReferenceEnvironment(ReferenceEnvironmentInjectionFlags.ConnectionString | ReferenceEnvironmentInjectionFlags.ServiceDiscovery)
    .WithReplicas(WorkerReplicas)
    .WithReference(platformDb).WaitFor(platformDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(objectStore).WaitFor(objectStore)
    .WithEnvironment("Parameters__internal-api-key", internalApiKey)
    .WithHttpHealthCheck("/health");

var contextEnrichment = builder.AddProject<Projects.Platform_ContextEnrichment>("context-enrichment")
    .WithHttpEndpoint()
    .WithReferenceEnvironment(ReferenceEnvironmentInjectionFlags.ConnectionString | ReferenceEnvironmentInjectionFlags.ServiceDiscovery)
    .WithReference(platformDb).WaitFor(platformDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(modelWorker)
    .WithEnvironment("Parameters__internal-api-key", internalApiKey)
    .WithHttpHealthCheck("/health");

var inferenceApi = builder.AddProject<Projects.Platform_InferenceApi>("inference-api")
    .WithHttpEndpoint()
    .WithGrpcEndpoint(grpcTargetPort)
    .WithReferenceEnvironment(ReferenceEnvironmentInjectionFlags.ConnectionString | ReferenceEnvironmentInjectionFlags.ServiceDiscovery)
    .WithReference(platformDb).WaitFor(platformDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(adminApi)
    .WithReference(contextEnrichment)
    .WithReference(modelWorker)
    .WithEnvironment("Parameters__internal-api-key", internalApiKey)
    .WithHttpHealthCheck("/health")
    .WithExternalHttpEndpoints();

// Postgres connections per process (Npgsql's default is 100): every replica of every service shares the server's
// max_connections, so each gets a bound sized to its work and callers beyond it wait for a free connection instead of the
// server refusing "too many clients" once the deployment scales out. InferenceApi and the workers read Postgres only on
// cache misses and on their views' refreshes; ContextEnrichment per enrichment request; AdminApi for the admin API,
// reports, the usage writer and the rollout controller. The published server's limit covers the sum at the overlays'
// largest scale (PostgresBuilderExtensions.PublishedMaxConnections; docs/publishing.md).
adminApi.WithEnvironment("Postgres__MaxPoolSize", "8");
modelWorker.WithEnvironment("Postgres__MaxPoolSize", "2");
contextEnrichment.WithEnvironment("Postgres__MaxPoolSize", "10");
inferenceApi.WithEnvironment("Postgres__MaxPoolSize", "5");

// Run mode puts every worker replica on this machine's cores, so InferenceApi packs requests onto one replica until a
// full batch (64) is in flight: one copy of the weights stays in the CPU caches and batches fill, and the other replica
// is a warm standby that takes the overflow and the failovers. The busy replica's ONNX Runtime pool gets every core
// (one thread per core; pool threads do not spin, so the standby's idle pool costs nothing). Measured back to back with
// the earlier split (cores / replicas threads each, packing below 16): c64 2,897 -> 3,441 inf/s, c1 p50 3.2 -> 2.2 ms
// (docs/serving-performance-log.md). Published manifests keep the defaults: pods get their own cores and are spread across.
if (builder.ExecutionContext.IsRunMode)
{
    // A stopping service keeps serving while its callers move away (ServiceDefaults' Shutdown:DrainDelay, 5 s for pods,
    // where Services and ingresses take a few seconds to drop it). Here callers learn of a stopping worker within the
    // second (its announcement is withdrawn) and nothing else balances: 2 s keeps Ctrl+C and restarts quick.
    foreach (var service in new[] { adminApi, modelWorker, contextEnrichment, inferenceApi })
    {
        service.WithEnvironment("Shutdown__DrainDelay", "00:00:02");
    }

    modelWorker.WithEnvironment("ModelWorker__IntraOpNumThreads", Environment.ProcessorCount.ToString(System.Globalization.CultureInfo.InvariantCulture));
    inferenceApi.WithEnvironment("WorkerRouting__PackBelow", "64");
}
else
{
    // Production keeps one trace in ten, decided where a trace starts (a kept trace is whole across services): each
    // recorded request costs every service on its path spans, the Redis profiler and the export to the collector, and
    // the tracing backend its storage. The dashboard in run mode shows every request (Aspire sets always_on there).
    // Change OTEL_TRACES_SAMPLER_ARG in the generated ConfigMaps to keep more or fewer.
    foreach (var service in new[] { adminApi, modelWorker, contextEnrichment, inferenceApi })
    {
        service.WithEnvironment("OTEL_TRACES_SAMPLER", "parentbased_traceidratio").WithEnvironment("OTEL_TRACES_SAMPLER_ARG", "0.1");
    }
}

builder.RunProjectsFromBuildOutput();
builder.AddStartupReport();
builder.Build().Run();
