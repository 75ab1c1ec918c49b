namespace Platform.Hosting.Publishing;

/// <summary>Turns the application model into deployment artefacts (publish mode).</summary>
public interface IDistributedApplicationPublisher
{
    /// <summary>The name given to <c>--publisher</c> ("manifest", "kubernetes").</summary>
    string Name { get; }

    /// <summary>Writes the artefacts for <paramref name="context"/>'s model.</summary>
    Task PublishAsync(PublishingContext context, CancellationToken cancellationToken);
}

/// <summary>What a publisher works from.</summary>
/// <param name="Resources">The application model.</param>
/// <param name="OutputPath">The <c>--output-path</c> argument: a file (manifest) or a directory (kubernetes).</param>
/// <param name="AppHostDirectory">Directory of the AppHost project; project paths are written relative to outputs.</param>
/// <param name="ExecutionContext">The publish-mode execution context.</param>
/// <param name="Configuration">AppHost configuration (publisher options such as the image registry and tag).</param>
public sealed record PublishingContext(
    IResourceCollection Resources,
    string OutputPath,
    string AppHostDirectory,
    DistributedApplicationExecutionContext ExecutionContext,
    Microsoft.Extensions.Configuration.IConfiguration Configuration);
