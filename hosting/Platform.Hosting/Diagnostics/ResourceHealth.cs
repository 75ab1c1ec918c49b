using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Platform.Hosting;

/// <summary>Waits for a whole application model to be up: every resource, and every replica of it, Running and Healthy.</summary>
public static class ResourceHealth
{
    private static readonly HashSet<string> TerminalStates = new(StringComparer.OrdinalIgnoreCase)
    {
        KnownResourceStates.FailedToStart, KnownResourceStates.Exited, KnownResourceStates.Finished, "RuntimeUnhealthy",
    };

    /// <summary>
    /// The resources that run and report health: executables, projects (once per replica) and child resources such as
    /// databases. Parameters, connection strings and resources that only start on request are not waited for.
    /// </summary>
    public static IReadOnlyDictionary<string, int> ExpectedInstances(DistributedApplicationModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Resources
            .Where(r => r is not ParameterResource && !r.HasAnnotationOfType<ExplicitStartupAnnotation>()
                && (r is ExecutableResource or ProjectResource || r is IResourceWithParent && r.HasAnnotationOfType<HealthCheckAnnotation>()))
            .ToDictionary(r => r.Name, r => r.TryGetLastAnnotation<ReplicaAnnotation>(out var replicas) ? replicas.Replicas : 1, StringComparer.Ordinal);
    }

    /// <summary>
    /// Returns once every resource of <paramref name="model"/> (each replica) is Running and Healthy. Throws at once, naming
    /// the resource and its state, when one fails to start or exits before it got there.
    /// </summary>
    public static async Task WaitForAllHealthyAsync(this ResourceNotificationService notifications, DistributedApplicationModel model,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(notifications);
        var expected = ExpectedInstances(model);
        var latest = new Dictionary<string, ResourceEvent>(StringComparer.Ordinal);
        await foreach (var update in notifications.WatchAsync(cancellationToken).ConfigureAwait(false))
        {
            if (!expected.ContainsKey(update.Resource.Name))
            {
                continue;
            }

            latest[update.ResourceId] = update;
            var state = update.Snapshot.State?.Text;
            if (state is not null && TerminalStates.Contains(state))
            {
                throw new DistributedApplicationException(
                    $"Resource '{update.ResourceId}' is {state} (exit code {update.Snapshot.ExitCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}) before becoming healthy; see its console log.");
            }

            if (expected.All(e => latest.Values.Count(r => r.Resource.Name == e.Key && IsUp(r.Snapshot)) >= e.Value))
            {
                return;
            }
        }
    }

    private static bool IsUp(CustomResourceSnapshot snapshot) =>
        snapshot.State?.Text == KnownResourceStates.Running && snapshot.HealthStatus is HealthStatus.Healthy;
}
