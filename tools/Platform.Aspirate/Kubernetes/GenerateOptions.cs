using System.Text.RegularExpressions;
using Platform.Aspirate.Manifest;

namespace Platform.Aspirate.Kubernetes;

/// <summary>
/// What the generator needs beyond the manifest. The defaults produce the committed <c>aspirate-output/</c>; overlays
/// change the rest (storage class, digests, replicas...).
/// </summary>
public sealed partial record GenerateOptions
{
    /// <summary>Namespace of every object (<c>--namespace</c>).</summary>
    public string Namespace { get; init; } = "platform";

    /// <summary>Registry of the images built from projects and Dockerfiles (<c>--container-registry</c>).</summary>
    public string ContainerRegistry { get; init; } = "registry.example.com";

    /// <summary>Repository prefix of those images (<c>--container-repository-prefix</c>).</summary>
    public string ContainerRepositoryPrefix { get; init; } = "platform";

    /// <summary>
    /// Tag of those images (<c>--container-image-tag</c>); <c>latest</c> is refused. The default is the version
    /// <c>dotnet publish -t:PublishContainer</c> tags a project with when it sets none.
    /// </summary>
    public string ContainerImageTag { get; init; } = "1.0.0";

    /// <summary>imagePullPolicy of every container (<c>--image-pull-policy</c>).</summary>
    public string ImagePullPolicy { get; init; } = "IfNotPresent";

    /// <summary>Size of each volume's PersistentVolumeClaim (<c>--storage-size</c>).</summary>
    public string StorageSize { get; init; } = "10Gi";

    /// <summary>Storage class of those claims (<c>--storage-class</c>); the cluster's default when null.</summary>
    public string? StorageClass { get; init; }

    /// <summary>Collector the services export telemetry to (<c>--otlp-endpoint</c>).</summary>
    public string OtlpEndpoint { get; init; } = "http://otel-collector.observability.svc:4318";

    /// <summary>ClusterSecretStore the ExternalSecrets read (<c>--secret-store</c>).</summary>
    public string SecretStore { get; init; } = "platform-secrets";

    /// <summary>Prefix of the parameters' keys in that store (<c>--secret-key-prefix</c>).</summary>
    public string SecretKeyPrefix { get; init; } = "platform/";

    /// <summary>UID and GID of every pod (<c>--run-as-user</c>, at least 10000).</summary>
    public long RunAsUser { get; init; } = 10001;

    /// <summary>Values of non-secret parameters that have no default (<c>--parameter name=value</c>).</summary>
    public IReadOnlyDictionary<string, string> Parameters { get; init; } = new Dictionary<string, string>();

    /// <summary>Throws <see cref="ManifestException"/> naming the first option that cannot produce valid output.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(ContainerImageTag) || ContainerImageTag.Equals("latest", StringComparison.OrdinalIgnoreCase))
        {
            throw new ManifestException($"--container-image-tag '{ContainerImageTag}': images must name an explicit version");
        }

        if (RunAsUser < 10000)
        {
            throw new ManifestException($"--run-as-user {RunAsUser}: below 10000 it could collide with a node's users");
        }

        if (ImagePullPolicy is not ("Always" or "IfNotPresent" or "Never"))
        {
            throw new ManifestException($"--image-pull-policy '{ImagePullPolicy}': must be Always, IfNotPresent or Never");
        }

        if (!DnsLabel().IsMatch(Namespace))
        {
            throw new ManifestException($"--namespace '{Namespace}': must be a DNS label (lower-case letters, digits, '-')");
        }
    }

    /// <summary>A DNS-1123 label: what Kubernetes accepts as a namespace, volume or Service name.</summary>
    [GeneratedRegex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    public static partial Regex DnsLabel();
}
