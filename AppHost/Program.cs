// Platform's composition: what runs, what it needs, who waits for whom.
// `dotnet run --project AppHost` runs it on this machine; `-- --publisher manifest|kubernetes
// --output-path <path>` publishes the same graph.
using Platform.Hosting;
using Platform.Hosting.ApplicationModel;

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

// Services that serve gRPC get a second endpoint, "grpc": its port arrives as GRPC_PORT and is HTTP/2 only (the
// services apply it with ServiceDefaults' UseGrpcPort); the "http" endpoint stays HTTP/1.1.
const int GrpcTargetPort = 8081;
static EndpointAnnotation GrpcEndpoint() => new("grpc", "http", targetPort: GrpcTargetPort, environmentVariable: "GRPC_PORT", transport: "http2");

const int WorkerReplicas = 2;
var modelWorker = builder.AddProject<Projects.Platform_ModelWorker>("model-worker")
    .WithEndpoint(GrpcEndpoint())
    .WithReplicas(WorkerReplicas)
    .WithReference(platformDb).WaitFor(platformDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(objectStore).WaitFor(objectStore)
    .WithHttpHealthCheck("/health").WithLivenessProbe("/alive");

var contextEnrichment = builder.AddProject<Projects.Platform_ContextEnrichment>("context-enrichment")
    .WithReference(platformDb).WaitFor(platformDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(modelWorker)
    .WithHttpHealthCheck("/health").WithLivenessProbe("/alive");

var inferenceApi = builder.AddProject<Projects.Platform_InferenceApi>("inference-api")
    .WithEndpoint(GrpcEndpoint())
    .WithReference(platformDb).WaitFor(platformDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(adminApi)
    .WithReference(contextEnrichment)
    .WithReference(modelWorker)
    .WithHttpHealthCheck("/health").WithLivenessProbe("/alive")
    .WithExternalHttpEndpoints();

// Run mode puts every worker replica on this machine's cores, so: one share of the cores each for ONNX Runtime
// (ORT's default is a thread per core per replica, which oversubscribes them), and InferenceApi packs requests onto
// one replica until it has a batch's worth in flight, so one copy of the weights stays in cache and batches fill.
// Measured with bench/Platform.Bench.Serving on 2 cores: c64 1,430-1,690 -> 2,130-2,330 inf/s, c1 p50 2.7 -> 1.7-2.6 ms.
// Published manifests keep the defaults: pods get their own cores and are spread across.
if (builder.ExecutionContext.IsPublishMode)
{
    // Run mode sets GRPC_PORT from the endpoint's allocated port; a pod listens on the target port.
    modelWorker.WithEnvironment("GRPC_PORT", GrpcTargetPort.ToString(System.Globalization.CultureInfo.InvariantCulture));
    inferenceApi.WithEnvironment("GRPC_PORT", GrpcTargetPort.ToString(System.Globalization.CultureInfo.InvariantCulture));
}

if (builder.ExecutionContext.IsRunMode)
{
    var threadsPerReplica = Math.Max(1, Environment.ProcessorCount / WorkerReplicas);
    modelWorker.WithEnvironment("ModelWorker__IntraOpNumThreads", threadsPerReplica.ToString(System.Globalization.CultureInfo.InvariantCulture));
    inferenceApi.WithEnvironment("WorkerRouting__PackBelow", "16");
}

builder.Build().Run();
