namespace Platform.Hosting.Infrastructure;

/// <summary>Finds native programs, and says how to install them when they are missing.</summary>
public static class NativeBinaries
{
    /// <summary>The install command printed when something is missing.</summary>
    public const string InstallCommand = "eng/install.sh";

    /// <summary>True when the AppHost runs as root (Postgres then runs as user <c>postgres</c>: it refuses root).</summary>
    public static bool IsRoot => Environment.UserName == "root";

    /// <summary>Resolves <paramref name="name"/> from <paramref name="candidates"/> and then PATH; null if absent.</summary>
    public static string? Find(string name, params string[] candidates)
    {
        foreach (var candidate in candidates)
        {
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        return path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);
    }

    /// <summary>Like <see cref="Find"/>, but throws a message naming the install command and package.</summary>
    public static string Require(string name, string package, params string[] candidates) =>
        Find(name, candidates) ?? throw new DistributedApplicationException(
            $"'{name}' was not found (looked in {string.Join(", ", candidates.Append("PATH"))}). Install it with {InstallCommand} ({package}).");

    /// <summary>The directory holding Platform's npm-installed tools (<c>eng/tools</c>), searched upwards from <paramref name="start"/>.</summary>
    public static string? FindToolsDirectory(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            var tools = Path.Combine(dir.FullName, "eng", "tools");
            if (File.Exists(Path.Combine(tools, "package.json")))
            {
                return tools;
            }
        }

        return null;
    }

    /// <summary>True when every directory from the root down to <paramref name="path"/> can be searched by other users.</summary>
    public static bool IsReachableByOthers(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return true;
        }

        for (var dir = new DirectoryInfo(path); dir is not null; dir = dir.Parent)
        {
            if (dir.Exists && (File.GetUnixFileMode(dir.FullName) & UnixFileMode.OtherExecute) == 0)
            {
                return false;
            }
        }

        return true;
    }
}
