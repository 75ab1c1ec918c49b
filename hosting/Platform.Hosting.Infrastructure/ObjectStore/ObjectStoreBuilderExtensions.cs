using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Platform.Hosting.ApplicationModel;
using Platform.Hosting.Infrastructure;

namespace Platform.Hosting.ApplicationModel
{
    /// <summary>
    /// An S3-compatible object store, shaped like the Community Toolkit's <c>MinioContainerResource</c>.
    /// Kubernetes runs MinIO; run mode runs a <c>minio</c> binary when one is on PATH, s3rver otherwise.
    /// </summary>
    public sealed class MinioContainerResource(string name, ParameterResource rootUser, ParameterResource rootPassword)
        : ContainerResource(name), IResourceWithConnectionString
    {
        /// <summary>The S3 API endpoint name.</summary>
        public const string PrimaryEndpointName = "http";

        /// <summary>The web console endpoint name (MinIO only).</summary>
        public const string ConsoleEndpointName = "console";

        /// <inheritdoc />
        public override string TypeDisplayName => "ObjectStore";

        /// <summary>The access key.</summary>
        public ParameterResource RootUser { get; } = rootUser;

        /// <summary>The secret key (secret).</summary>
        public ParameterResource PasswordParameter { get; } = rootPassword;

        /// <summary>The S3 API endpoint.</summary>
        public EndpointReference PrimaryEndpoint => new(this, PrimaryEndpointName);

        /// <inheritdoc />
        public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
            $"Endpoint=http://{PrimaryEndpoint.Property(EndpointProperty.Host)}:{PrimaryEndpoint.Property(EndpointProperty.Port)};AccessKey={RootUser};SecretKey={PasswordParameter}");
    }
}

namespace Platform.Hosting
{
    /// <summary>The Community Toolkit's <c>AddMinioContainer</c>, under Platform's name <c>AddMinio</c>.</summary>
    public static class ObjectStoreBuilderExtensions
    {
        /// <summary>Image deployed in publish mode (pinned release).</summary>
        public const string Image = "quay.io/minio/minio";

        /// <summary>Pinned image tag.</summary>
        public const string Tag = "RELEASE.2025-09-07T16-13-09Z";

        /// <summary>
        /// Adds the object store: endpoints "http" (9000) and "console" (9001), health at
        /// <c>/minio/health/live</c>, connection string <c>Endpoint=...;AccessKey=...;SecretKey=...</c>.
        /// </summary>
        public static IResourceBuilder<MinioContainerResource> AddMinio(this IDistributedApplicationBuilder builder, string name,
            IResourceBuilder<ParameterResource>? rootUser = null, IResourceBuilder<ParameterResource>? rootPassword = null, int? port = null)
        {
            builder.EnsureNameAvailable(name);
            var user = rootUser?.Resource ?? new ParameterResource($"{name}-user", () => "platform", secret: false);
            var pw = rootPassword ?? builder.AddParameter($"{name}-password", secret: true);
            var store = new MinioContainerResource(name, user, pw.Resource);
            return builder.AddResource(store)
                .WithEndpoint(new EndpointAnnotation(MinioContainerResource.PrimaryEndpointName, "http", port, 9000))
                .WithEndpoint(new EndpointAnnotation(MinioContainerResource.ConsoleEndpointName, "http", null, 9001))
                .WithImage(Image, Tag)
                .WithArgs("server", "/data", "--console-address", ":9001")
                .WithEnvironment("MINIO_ROOT_USER", ReferenceExpression.Create($"{user}"))
                .WithEnvironment("MINIO_ROOT_PASSWORD", pw)
                .WithHttpHealthCheck("/minio/health/live")
                .WithAnnotation(new NativeProcessAnnotation(new ObjectStoreLauncher(store, builder.AppHostDirectory)))
                .WithAnnotation(new ResourceHealthCheckAnnotation("objectstore", (_, ct) => ProbeAsync(store, ct)));
        }

        /// <summary>Keeps objects in <c>.platform/&lt;name&gt;/</c> (a PVC in Kubernetes).</summary>
        public static IResourceBuilder<MinioContainerResource> WithDataVolume(this IResourceBuilder<MinioContainerResource> builder, string? name = null) =>
            ResourceBuilderExtensions.WithDataVolume(builder, name, "/data");

        private static async Task<HealthCheckResult> ProbeAsync(MinioContainerResource store, CancellationToken ct)
        {
            // s3rver has no health route; any HTTP answer from the S3 port means it serves requests.
            try
            {
                using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
                using var response = await http.GetAsync($"{store.PrimaryEndpoint.Url}/minio/health/live", ct).ConfigureAwait(false);
                return HealthCheckResult.Healthy($"S3 endpoint answered {(int)response.StatusCode}");
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                return HealthCheckResult.Unhealthy(ex.Message, ex);
            }
        }
    }

    /// <summary>Runs <c>minio</c> when present, else s3rver through <c>eng/tools/s3-server.js</c>.</summary>
    internal sealed class ObjectStoreLauncher(MinioContainerResource store, string appHostDirectory) : INativeProcessLauncher
    {
        public string InstallHint => $"{NativeBinaries.InstallCommand} (npm ci in eng/tools installs s3rver)";

        public Task<NativeProcessSpec> PrepareAsync(NativeProcessContext context, CancellationToken cancellationToken)
        {
            var api = context.Endpoints[MinioContainerResource.PrimaryEndpointName];
            var console = context.Endpoints[MinioContainerResource.ConsoleEndpointName];
            var env = new Dictionary<string, string>
            {
                ["MINIO_ROOT_USER"] = store.RootUser.Value,
                ["MINIO_ROOT_PASSWORD"] = store.PasswordParameter.Value,
                ["S3_ACCESS_KEY"] = store.RootUser.Value,
                ["S3_SECRET_KEY"] = store.PasswordParameter.Value,
            };

            if (Environment.GetEnvironmentVariable("PLATFORM_OBJECTSTORE") != "s3rver" && NativeBinaries.Find("minio") is { } minio)
            {
                return Task.FromResult(new NativeProcessSpec(minio,
                    ["server", context.DataDirectory, "--address", $"127.0.0.1:{api.Port}", "--console-address", $"127.0.0.1:{console.Port}", "--quiet"],
                    Environment: env));
            }

            var node = NativeBinaries.Require("node", $"{NativeBinaries.InstallCommand} (apt-get install nodejs)", "/usr/bin/node");
            var tools = NativeBinaries.FindToolsDirectory(appHostDirectory);
            var script = tools is null ? null : Path.Combine(tools, "s3-server.js");
            if (script is null || !File.Exists(Path.Combine(tools!, "node_modules", "s3rver", "package.json")))
            {
                throw new DistributedApplicationException(
                    $"The object store needs s3rver in eng/tools/node_modules (not found from '{appHostDirectory}'). Install it with: {InstallHint}");
            }

            // s3rver 3.7 encrypts listing continuation tokens with DES, which Node 20's OpenSSL 3 only offers
            // through the legacy provider: without it every truncated listing answers 500.
            return Task.FromResult(new NativeProcessSpec(node,
                ["--openssl-legacy-provider", script, Path.Combine(context.DataDirectory, "objects"), "127.0.0.1", api.Port.ToString(CultureInfo.InvariantCulture)],
                Environment: env));
        }
    }
}
