using Platform.Hosting.ApplicationModel;

namespace Platform.Hosting.Dashboard;

/// <summary>The summary <c>GET /api/resources</c> returns for each resource.</summary>
public sealed record ResourceDto(
    string Name,
    string Type,
    string State,
    string? Health,
    IReadOnlyList<EndpointDto> Endpoints,
    int Replicas,
    IReadOnlyList<int> Pids,
    DateTimeOffset? StartedAt,
    int? ExitCode,
    string? Message,
    int Restarts,
    IReadOnlyList<InstanceDto> Instances,
    IReadOnlyList<string> References)
{
    /// <summary>Maps a snapshot.</summary>
    public static ResourceDto From(ResourceSnapshot s) => new(
        s.Name, s.Type, s.State, s.Health?.ToString(),
        s.Endpoints.Select(e => new EndpointDto(e.Name, e.Url)).ToList(),
        s.Replicas.Count, s.Pids, s.StartedAt, s.ExitCode, s.Message,
        s.Replicas.Sum(r => r.Restarts),
        s.Replicas.Select(r => new InstanceDto(r.InstanceId, r.Index, r.State, r.Health?.ToString(), r.Pid, r.ExitCode, r.StartedAt, r.Restarts,
            r.Endpoints.Select(e => new EndpointDto(e.Name, e.Url)).ToList())).ToList(),
        s.References);
}

/// <summary>An endpoint in <see cref="ResourceDto"/>.</summary>
public sealed record EndpointDto(string Name, string Url);

/// <summary>One replica in <see cref="ResourceDto"/>.</summary>
public sealed record InstanceDto(
    string InstanceId,
    int Index,
    string State,
    string? Health,
    int? Pid,
    int? ExitCode,
    DateTimeOffset? StartedAt,
    int Restarts,
    IReadOnlyList<EndpointDto> Endpoints);
