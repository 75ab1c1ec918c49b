using Microsoft.Extensions.Configuration;

namespace Platform.Hosting.Infrastructure;

/// <summary>
/// Where native servers keep their files in run mode: <c>Platform:DataDirectory</c>, by default <c>.platform/</c> beside the
/// AppHost's folder (one sub-folder per resource). <c>Platform:DurableData=false</c> (tests) trades crash safety for speed.
/// </summary>
internal sealed record NativeDataDirectory(string Root, bool Durable)
{
    public static NativeDataDirectory From(IDistributedApplicationBuilder builder)
    {
        var root = builder.Configuration["Platform:DataDirectory"] is { Length: > 0 } configured
            ? Path.GetFullPath(configured, builder.AppHostDirectory)
            : Path.GetFullPath(Path.Combine(builder.AppHostDirectory, "..", ".platform"));
        return new NativeDataDirectory(root, builder.Configuration.GetValue("Platform:DurableData", true));
    }

    /// <summary>The resource's own folder, created.</summary>
    public string For(string resourceName)
    {
        var path = Path.Combine(Root, resourceName);
        Directory.CreateDirectory(path);
        return path;
    }
}
