using Platform.Hosting;

namespace Platform.Hosting.Tests;

/// <summary>Builders for small applications composed inside a test.</summary>
internal static class TestApps
{
    public static DistributedApplicationBuilder CreateBuilder(params string[] args) =>
        DistributedApplication.CreateBuilder(new DistributedApplicationOptions
        {
            Args = args,
            AppHostAssembly = typeof(TestApps).Assembly,
            DisableDashboard = true,
            RandomizePorts = true,
            DisablePersistence = true,
            StateDirectory = Path.Combine(Path.GetTempPath(), $"platform-hosting-tests-{Guid.NewGuid():N}"),
            PrintBanner = false,
        });

    /// <summary>A fake project file so AddProject has something to point at (run mode is not used with it).</summary>
    public static string FakeProject(string name)
    {
        var dir = Directory.CreateTempSubdirectory("platform-fake-project-").FullName;
        var path = Path.Combine(dir, $"{name}.csproj");
        File.WriteAllText(path, "<Project Sdk=\"Microsoft.NET.Sdk\" />");
        return path;
    }
}
