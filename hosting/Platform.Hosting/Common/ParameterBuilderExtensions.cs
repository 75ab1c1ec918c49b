using Aspire.Hosting.ApplicationModel;

namespace Platform.Hosting;

/// <summary>Secrets Platform generates when nobody configured them.</summary>
public static class ParameterBuilderExtensions
{
    /// <summary>
    /// A secret parameter: <c>Parameters:&lt;name&gt;</c> from configuration when set, otherwise generated once (letters and
    /// digits, so it fits every connection-string format) and kept in the AppHost's user secrets. Publish mode writes it to the
    /// manifest as a generated secret input.
    /// </summary>
    public static IResourceBuilder<ParameterResource> AddPassword(this IDistributedApplicationBuilder builder, string name, int minLength = 24) =>
        builder.AddParameter(name, new GenerateParameterDefault { MinLength = minLength, Special = false }, secret: true, persist: true);
}
