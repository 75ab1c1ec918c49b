namespace Aspire.Hosting.ApplicationModel;

/// <summary>
/// The S3-compatible object store as a native process (run mode): s3rver (npm, installed into <c>eng/tools</c>) with the
/// generated credentials. Publish mode runs MinIO (<see cref="MinioContainerResource"/>) under the same name.
/// </summary>
public sealed class NativeObjectStoreResource(string name, string command, string workingDirectory, ParameterResource user, ParameterResource password)
    : ExecutableResource(name, command, workingDirectory), IResourceWithConnectionString
{
    /// <summary>The S3 API endpoint name.</summary>
    public const string PrimaryEndpointName = "http";

    /// <summary>The access key.</summary>
    public ParameterResource UserParameter { get; } = user;

    /// <summary>The secret key (secret parameter).</summary>
    public ParameterResource PasswordParameter { get; } = password;

    /// <summary>The S3 API endpoint.</summary>
    public EndpointReference PrimaryEndpoint => new(this, PrimaryEndpointName);

    /// <inheritdoc />
    public ReferenceExpression ConnectionStringExpression => ObjectStoreConnectionString.For(PrimaryEndpoint, UserParameter, PasswordParameter);
}

/// <summary>MinIO in a container (publish mode): S3 API on 9000, console on 9001, data under <c>/data</c>.</summary>
public sealed class MinioContainerResource(string name, ParameterResource user, ParameterResource password)
    : ContainerResource(name), IResourceWithConnectionString
{
    /// <summary>The S3 API endpoint name.</summary>
    public const string PrimaryEndpointName = "http";

    /// <summary>The web console's endpoint name.</summary>
    public const string ConsoleEndpointName = "console";

    /// <summary>The root user (access key).</summary>
    public ParameterResource UserParameter { get; } = user;

    /// <summary>The root password (secret key).</summary>
    public ParameterResource PasswordParameter { get; } = password;

    /// <summary>The S3 API endpoint.</summary>
    public EndpointReference PrimaryEndpoint => new(this, PrimaryEndpointName);

    /// <inheritdoc />
    public ReferenceExpression ConnectionStringExpression => ObjectStoreConnectionString.For(PrimaryEndpoint, UserParameter, PasswordParameter);
}

/// <summary>The connection-string form Platform's object-store client reads: <c>Endpoint=…;AccessKey=…;SecretKey=…</c>.</summary>
internal static class ObjectStoreConnectionString
{
    public static ReferenceExpression For(EndpointReference endpoint, ParameterResource user, ParameterResource password) =>
        ReferenceExpression.Create(
            $"Endpoint=http://{endpoint.Property(EndpointProperty.HostAndPort)};AccessKey={user};SecretKey={password}");
}
