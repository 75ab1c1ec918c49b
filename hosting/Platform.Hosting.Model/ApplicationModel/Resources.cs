namespace Platform.Hosting.ApplicationModel;

/// <summary>A .NET project started from its build output (run mode) or deployed as an image (publish mode).</summary>
public class ProjectResource(string name) :
    Resource(name), IResourceWithEnvironment, IResourceWithArgs, IResourceWithServiceDiscovery, IResourceWithWaitSupport;

/// <summary>Any program started with a command line.</summary>
public class ExecutableResource(string name, string command, string workingDirectory) :
    Resource(name), IResourceWithEnvironment, IResourceWithArgs, IResourceWithEndpoints, IResourceWithWaitSupport
{
    /// <summary>The program to run.</summary>
    public string Command { get; } = command;

    /// <summary>Directory the program starts in.</summary>
    public string WorkingDirectory { get; } = workingDirectory;
}

/// <summary>
/// A server Aspire would run as a container. Here run mode starts it as a native process
/// (see <see cref="NativeProcessAnnotation"/>), publish mode deploys the image.
/// </summary>
public class ContainerResource(string name) :
    Resource(name), IResourceWithEnvironment, IResourceWithArgs, IResourceWithEndpoints, IResourceWithWaitSupport
{
    /// <summary>Display name of the server type ("Postgres", "Redis"...).</summary>
    public virtual string TypeDisplayName => "Container";
}

/// <summary>An input value of the application: from configuration <c>Parameters:name</c>, generated when absent.</summary>
public sealed class ParameterResource : Resource, IValueProvider, IManifestExpressionProvider
{
    private readonly Func<string> _valueGetter;

    /// <summary>Creates a parameter whose value is produced lazily by <paramref name="valueGetter"/>.</summary>
    public ParameterResource(string name, Func<string> valueGetter, bool secret, GenerateParameterDefault? generate = null)
        : base(name)
    {
        _valueGetter = valueGetter;
        Secret = secret;
        Generate = generate;
    }

    /// <summary>Secret parameters are masked in logs and the dashboard and never written into manifests.</summary>
    public bool Secret { get; }

    /// <summary>How a missing value is generated (publish mode writes this into the manifest).</summary>
    public GenerateParameterDefault? Generate { get; }

    /// <summary>The value (run mode).</summary>
    public string Value => _valueGetter();

    /// <inheritdoc />
    public ValueTask<string?> GetValueAsync(CancellationToken cancellationToken) => ValueTask.FromResult<string?>(Value);

    /// <inheritdoc />
    public string ValueExpression => $"{{{Name}.value}}";
}

/// <summary>Rules for generating a parameter value (Aspire's <c>GenerateParameterDefault</c>).</summary>
public sealed record GenerateParameterDefault(int MinLength = 22, bool Special = false);

/// <summary>A connection string supplied from configuration <c>ConnectionStrings:name</c>.</summary>
public sealed class ConnectionStringResource(string name, ReferenceExpression expression) : Resource(name), IResourceWithConnectionString
{
    /// <inheritdoc />
    public ReferenceExpression ConnectionStringExpression { get; } = expression;
}
