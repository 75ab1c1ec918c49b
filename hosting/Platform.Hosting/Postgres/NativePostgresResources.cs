namespace Aspire.Hosting.ApplicationModel;

/// <summary>
/// PostgreSQL as a native process (run mode): <c>postgres</c> from Debian's package on a loopback port, user
/// <c>postgres</c>, scram-sha-256. Publish mode uses Aspire's <c>PostgresServerResource</c> under the same name.
/// </summary>
public sealed class NativePostgresServerResource(string name, string command, string workingDirectory, ParameterResource password)
    : ExecutableResource(name, command, workingDirectory), IResourceWithConnectionString
{
    /// <summary>The endpoint name, as Aspire's Postgres resource names it.</summary>
    public const string PrimaryEndpointName = "tcp";

    /// <summary>The superuser the cluster is created with.</summary>
    public const string UserName = "postgres";

    private readonly Dictionary<string, string> _databases = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The superuser's password (secret parameter).</summary>
    public ParameterResource PasswordParameter { get; } = password;

    /// <summary>The server's endpoint.</summary>
    public EndpointReference PrimaryEndpoint => new(this, PrimaryEndpointName);

    /// <summary>Databases to create once the server answers: resource name → database name.</summary>
    public IReadOnlyDictionary<string, string> Databases => _databases;

    /// <inheritdoc />
    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"Host={PrimaryEndpoint.Property(EndpointProperty.Host)};Port={PrimaryEndpoint.Property(EndpointProperty.Port)};Username={UserName};Password={PasswordParameter}");

    internal void AddDatabase(string resourceName, string databaseName) => _databases.TryAdd(resourceName, databaseName);
}

/// <summary>A database on a <see cref="NativePostgresServerResource"/>, created when the server first answers.</summary>
public sealed class NativePostgresDatabaseResource(string name, string databaseName, NativePostgresServerResource parent)
    : Resource(name), IResourceWithParent<NativePostgresServerResource>, IResourceWithConnectionString
{
    /// <inheritdoc />
    public NativePostgresServerResource Parent { get; } = parent;

    /// <summary>The database's name on the server.</summary>
    public string DatabaseName { get; } = databaseName;

    /// <inheritdoc />
    public ReferenceExpression ConnectionStringExpression
    {
        get
        {
            var builder = new ReferenceExpressionBuilder();
            builder.Append($"{Parent}");
            builder.AppendLiteral($";Database={DatabaseName}");
            return builder.Build();
        }
    }
}
