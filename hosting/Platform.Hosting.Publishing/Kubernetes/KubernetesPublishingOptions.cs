using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace Platform.Hosting.Publishing.Kubernetes;

/// <summary>
/// What the Kubernetes publisher needs beyond the model, from configuration section <c>Publishing</c>
/// (e.g. <c>--Publishing:Registry=ghcr.io/acme</c>).
/// </summary>
/// <param name="Namespace">Namespace of every object (<c>Publishing:Namespace</c>).</param>
/// <param name="Registry">Registry and path prefix of the services' images (<c>Publishing:Registry</c>).</param>
/// <param name="ImageTag">Tag of the services' images (<c>Publishing:ImageTag</c>); never <c>latest</c>.</param>
/// <param name="StorageSize">PVC size per data volume (<c>Publishing:StorageSize</c>).</param>
/// <param name="StorageClass">PVC storage class (<c>Publishing:StorageClass</c>); the cluster default when null.</param>
/// <param name="OtlpEndpoint">Collector the services export telemetry to (<c>Publishing:OtlpEndpoint</c>).</param>
/// <param name="SecretStore">ClusterSecretStore the ExternalSecrets read from (<c>Publishing:SecretStore</c>).</param>
/// <param name="SecretKeyPrefix">Prefix of the keys in that store (<c>Publishing:SecretKeyPrefix</c>).</param>
/// <param name="RunAsUser">UID and GID of every pod (<c>Publishing:RunAsUser</c>, at least 10000).</param>
public sealed record KubernetesPublishingOptions(
    string Namespace,
    string Registry,
    string ImageTag,
    string StorageSize,
    string? StorageClass,
    string OtlpEndpoint,
    string SecretStore,
    string SecretKeyPrefix,
    long RunAsUser)
{
    /// <summary>Default registry: a placeholder a real deployment overrides.</summary>
    public const string DefaultRegistry = "registry.example.com/platform";

    /// <summary>Reads the options, defaulting the image tag to the AppHost's version.</summary>
    public static KubernetesPublishingOptions FromConfiguration(IConfiguration configuration)
    {
        var section = configuration.GetSection("Publishing");
        var tag = section["ImageTag"] ?? AppHostVersion(configuration)
            ?? throw new DistributedApplicationException("Set Publishing:ImageTag: the AppHost's version is unknown.");
        if (string.Equals(tag, "latest", StringComparison.OrdinalIgnoreCase) || tag.Length == 0)
        {
            throw new DistributedApplicationException($"Publishing:ImageTag '{tag}' is not a version: images must name an explicit version.");
        }

        var uid = long.Parse(section["RunAsUser"] ?? "10001", CultureInfo.InvariantCulture);
        if (uid < 10000)
        {
            throw new DistributedApplicationException($"Publishing:RunAsUser {uid} is below 10000 (it could collide with a node's users).");
        }

        return new KubernetesPublishingOptions(
            Namespace: section["Namespace"] ?? "platform",
            Registry: (section["Registry"] ?? DefaultRegistry).TrimEnd('/'),
            ImageTag: tag,
            StorageSize: section["StorageSize"] ?? "10Gi",
            StorageClass: section["StorageClass"],
            OtlpEndpoint: section["OtlpEndpoint"] ?? "http://otel-collector.observability.svc:4318",
            SecretStore: section["SecretStore"] ?? "platform-secrets",
            SecretKeyPrefix: section["SecretKeyPrefix"] ?? "platform/",
            RunAsUser: uid);
    }

    // The host's application name is the AppHost assembly's; its version (major.minor.patch, without
    // the source revision) keeps the output identical across commits until the version is bumped.
    private static string? AppHostVersion(IConfiguration configuration)
    {
        var name = configuration["applicationName"];
        if (name is null)
        {
            return null;
        }

        var assembly = AppDomain.CurrentDomain.GetAssemblies().FirstOrDefault(a => a.GetName().Name == name);
        try
        {
            assembly ??= Assembly.Load(new AssemblyName(name));
        }
        catch (FileNotFoundException)
        {
            return null;
        }

        return assembly.GetName().Version?.ToString(3);
    }
}
