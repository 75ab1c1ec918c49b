using Platform.Hosting.ApplicationModel;

namespace Platform.Hosting.ApplicationModel;

/// <summary>A PostgreSQL server (Aspire's <c>PostgresServerResource</c>).</summary>
public sealed class PostgresServerResource(string name, ParameterResource userName, ParameterResource password)
    : ContainerResource(name), IResourceWithConnectionString
{
    /// <summary>The endpoint name ("tcp").</summary>
    public const string PrimaryEndpointName = "tcp";

    /// <inheritdoc />
    public override string TypeDisplayName => "Postgres";

    /// <summary>The superuser name.</summary>
    public ParameterResource UserNameParameter { get; } = userName;

    /// <summary>The superuser password (secret).</summary>
    public ParameterResource PasswordParameter { get; } = password;

    /// <summary>The server endpoint.</summary>
    public EndpointReference PrimaryEndpoint => new(this, PrimaryEndpointName);

    /// <summary>Databases created on this server once it is ready.</summary>
    public List<PostgresDatabaseResource> Databases { get; } = [];

    /// <inheritdoc />
    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"Host={PrimaryEndpoint.Property(EndpointProperty.Host)};Port={PrimaryEndpoint.Property(EndpointProperty.Port)};Username={UserNameParameter};Password={PasswordParameter}");
}

/// <summary>A database on a <see cref="PostgresServerResource"/>.</summary>
public sealed class PostgresDatabaseResource(string name, string databaseName, PostgresServerResource parent)
    : Resource(name), IResourceWithParent, IResourceWithConnectionString, IResourceWithWaitSupport
{
    /// <summary>The database name on the server.</summary>
    public string DatabaseName { get; } = databaseName;

    /// <summary>The server.</summary>
    public PostgresServerResource Parent { get; } = parent;

    IResource IResourceWithParent.Parent => Parent;

    /// <inheritdoc />
    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"{Parent};Database={DatabaseName}");
}
