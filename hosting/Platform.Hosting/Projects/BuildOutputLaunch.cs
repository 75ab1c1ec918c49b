using System.Reflection;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Eventing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Platform.Hosting;

/// <summary>
/// Run mode starts each project from its build output (the native apphost next to its dll) instead of through
/// <c>dotnet run --project</c>, Aspire's default. Why: with <c>dotnet run</c> the pid Aspire reports, stops and a fault drill
/// kills is the SDK's wrapper, and a SIGKILL of it leaves the service itself running, orphaned; and every start pays an
/// MSBuild evaluation per service, which on two cores more than doubles the platform's cold start. The AppHost's build
/// already builds every referenced project, so the output exists; where it does not, Aspire's default stays.
/// </summary>
public static class BuildOutputLaunchExtensions
{
    /// <summary>Launches every project resource from its build output in run mode.</summary>
    public static IDistributedApplicationBuilder RunProjectsFromBuildOutput(this IDistributedApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (!builder.ExecutionContext.IsRunMode)
        {
            return builder;
        }

        var configuration = builder.AppHostAssembly?.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        builder.Eventing.Subscribe<BeforeStartEvent>((@event, _) =>
        {
            var logger = @event.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(BuildOutputLaunchExtensions));
            foreach (var project in @event.Model.Resources.OfType<ProjectResource>())
            {
                if (project.HasAnnotationOfType<ExecutableAnnotation>() || !project.TryGetLastAnnotation<IProjectMetadata>(out var metadata))
                {
                    continue;
                }

                if (FindBuildOutput(metadata.ProjectPath, configuration) is { } executable)
                {
                    project.Annotations.Add(new ExecutableAnnotation { Command = executable, WorkingDirectory = Path.GetDirectoryName(metadata.ProjectPath)! });
                }
                else
                {
                    logger.LogWarning("No {Configuration} build output found for {Project}; it starts through 'dotnet run'", configuration, metadata.ProjectPath);
                }
            }

            return Task.CompletedTask;
        });
        return builder;
    }

    /// <summary>The project's native apphost in <c>bin/&lt;configuration&gt;/&lt;tfm&gt;/</c>, newest first.</summary>
    internal static string? FindBuildOutput(string projectPath, string configuration)
    {
        var bin = Path.Combine(Path.GetDirectoryName(projectPath)!, "bin", configuration);
        if (!Directory.Exists(bin))
        {
            return null;
        }

        var name = Path.GetFileNameWithoutExtension(projectPath);
        return Directory.GetDirectories(bin)
            .Select(tfm => Path.Combine(tfm, OperatingSystem.IsWindows() ? name + ".exe" : name))
            .Where(File.Exists)
            .OrderByDescending(File.GetLastWriteTimeUtc)
            .FirstOrDefault();
    }
}
