using Platform.Hosting.ApplicationModel;

namespace Platform.Hosting.Orchestration;

/// <summary>Finds a project's build output: projects start from it, not through <c>dotnet run</c>.</summary>
public static class ProjectOutput
{
    /// <summary>The built assembly of a project: the generated metadata's target path, else the newest <c>bin/*/*/Name.dll</c>.</summary>
    public static string FindTargetPath(IProjectMetadata metadata)
    {
        if (metadata.TargetPath is { } target && File.Exists(target))
        {
            return target;
        }

        var projectDir = Path.GetDirectoryName(metadata.ProjectPath)!;
        var assembly = Path.GetFileNameWithoutExtension(metadata.ProjectPath) + ".dll";
        var bin = Path.Combine(projectDir, "bin");
        var candidate = Directory.Exists(bin)
            ? Directory.EnumerateFiles(bin, assembly, SearchOption.AllDirectories)
                .Where(p => !p.Contains($"{Path.DirectorySeparatorChar}publish{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
                .OrderByDescending(File.GetLastWriteTimeUtc)
                .FirstOrDefault()
            : null;
        return candidate ?? throw new DistributedApplicationException(
            $"Project '{metadata.ProjectPath}' has not been built (no {assembly} under {bin}). Build the AppHost (dotnet build) first.");
    }
}
