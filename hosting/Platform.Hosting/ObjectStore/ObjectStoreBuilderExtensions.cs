using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Platform.Hosting.Infrastructure;

namespace Platform.Hosting;

/// <summary>The object store for Platform: s3rver as a native process in run mode, a MinIO container in publish mode.</summary>
public static class ObjectStoreBuilderExtensions
{
    /// <summary>MinIO's image in publish mode.</summary>
    public const string MinioImage = "quay.io/minio/minio";

    /// <summary>Pinned MinIO release.</summary>
    public const string MinioTag = "RELEASE.2025-09-07T16-13-09Z";

    /// <summary>
    /// Adds the object store named <paramref name="name"/>: parameters <c>&lt;name&gt;-user</c> (default "platform") and
    /// <c>&lt;name&gt;-password</c>; connection string <c>Endpoint=…;AccessKey=…;SecretKey=…</c>.
    /// </summary>
    public static IResourceBuilder<IResourceWithConnectionString> AddPlatformObjectStore(this IDistributedApplicationBuilder builder, string name)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var user = builder.AddParameter($"{name}-user", "platform", publishValueAsDefault: true);
        var password = builder.AddPassword($"{name}-password");
        return builder.ExecutionContext.IsPublishMode
            ? builder.AddMinio(name, user.Resource, password)
            : builder.AddNativeObjectStore(name, user.Resource, password.Resource);
    }

    /// <summary>Adds s3rver as a native process (run mode only).</summary>
    public static IResourceBuilder<NativeObjectStoreResource> AddNativeObjectStore(this IDistributedApplicationBuilder builder, string name,
        ParameterResource user, ParameterResource password)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var node = NativeBinaries.Require("node", "apt-get install nodejs", "/usr/bin/node");
        var tools = NativeBinaries.FindToolsDirectory(builder.AppHostDirectory);
        if (tools is null || !File.Exists(Path.Combine(tools, "node_modules", "s3rver", "package.json")))
        {
            throw new DistributedApplicationException(
                $"The object store needs s3rver in eng/tools/node_modules (searched upwards from '{builder.AppHostDirectory}'). Install it with {NativeBinaries.InstallCommand}.");
        }

        var directory = NativeDataDirectory.From(builder).For(name);
        var store = new NativeObjectStoreResource(name, node, directory, user, password);
        var healthCheck = $"{name}_check";
        builder.Services.AddHealthChecks().AddAsyncCheck(healthCheck, ct => ProbeAsync(store.PrimaryEndpoint, ct));
        return builder.AddResource(store)
            .WithEndpoint(name: NativeObjectStoreResource.PrimaryEndpointName, scheme: "http", isProxied: false)
            .WithIconName("Storage")
            // s3rver 3.7 encrypts listing continuation tokens with DES, which Node 20's OpenSSL 3 offers only through the
            // legacy provider: without it every truncated listing answers 500.
            .WithArgs(context =>
            {
                context.Args.Add("--openssl-legacy-provider");
                context.Args.Add(Path.Combine(tools, "s3-server.js"));
                context.Args.Add(Path.Combine(directory, "objects"));
                context.Args.Add("127.0.0.1");
                context.Args.Add(store.PrimaryEndpoint.Property(EndpointProperty.TargetPort));
            })
            .WithEnvironment("S3_ACCESS_KEY", ReferenceExpression.Create($"{user}"))
            .WithEnvironment("S3_SECRET_KEY", ReferenceExpression.Create($"{password}"))
            .WithHealthCheck(healthCheck);
    }

    /// <summary>Adds MinIO as a container (publish mode).</summary>
    public static IResourceBuilder<MinioContainerResource> AddMinio(this IDistributedApplicationBuilder builder, string name,
        ParameterResource user, IResourceBuilder<ParameterResource> password)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(password);
        var minio = new MinioContainerResource(name, user, password.Resource);
        return builder.AddResource(minio)
            .WithImage(MinioImage, MinioTag)
            .WithHttpEndpoint(targetPort: 9000, name: MinioContainerResource.PrimaryEndpointName)
            .WithHttpEndpoint(targetPort: 9001, name: MinioContainerResource.ConsoleEndpointName)
            .WithArgs("server", "/data", "--console-address", ":9001")
            .WithEnvironment("MINIO_ROOT_USER", ReferenceExpression.Create($"{user}"))
            .WithEnvironment("MINIO_ROOT_PASSWORD", password)
            .WithVolume($"{name}-data", "/data")
            .WithHttpHealthCheck("/minio/health/live", endpointName: MinioContainerResource.PrimaryEndpointName);
    }

    private static async Task<HealthCheckResult> ProbeAsync(EndpointReference endpoint, CancellationToken ct)
    {
        // s3rver has no health route: any HTTP answer from the S3 port means it serves requests.
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            using var response = await http.GetAsync(new Uri(new Uri(endpoint.Url), "/minio/health/live"), ct).ConfigureAwait(false);
            return HealthCheckResult.Healthy($"S3 endpoint answered {(int)response.StatusCode}");
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or InvalidOperationException)
        {
            return HealthCheckResult.Unhealthy(ex.Message, ex);
        }
    }
}
