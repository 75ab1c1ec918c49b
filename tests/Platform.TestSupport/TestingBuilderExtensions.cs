using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;

namespace Platform.TestSupport;

/// <summary>Changes suites make to the AppHost's model before it starts.</summary>
public static class TestingBuilderExtensions
{
    /// <summary>The builder of one of the AppHost's projects, e.g. to set its environment or replicas for a suite.</summary>
    public static IResourceBuilder<ProjectResource> Project(this IDistributedApplicationTestingBuilder builder, string name)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var resource = builder.Resources.OfType<ProjectResource>().FirstOrDefault(r => r.Name == name)
            ?? throw new InvalidOperationException($"The AppHost has no project named '{name}'.");
        return builder.CreateResourceBuilder(resource);
    }
}
