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
    string? Message)
{
    /// <summary>Maps a snapshot.</summary>
    public static ResourceDto From(ResourceSnapshot s) => new(
        s.Name, s.Type, s.State, s.Health?.ToString(),
        s.Endpoints.Select(e => new EndpointDto(e.Name, e.Url)).ToList(),
        s.Replicas.Count, s.Pids, s.StartedAt, s.ExitCode, s.Message);
}

/// <summary>An endpoint in <see cref="ResourceDto"/>.</summary>
public sealed record EndpointDto(string Name, string Url);
