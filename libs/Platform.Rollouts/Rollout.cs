namespace Platform.Rollouts;

/// <summary>How a rollout's candidate takes part in serving.</summary>
public static class RolloutModes
{
    /// <summary>The candidate answers <see cref="Rollout.CandidatePercent"/> % of the model's unversioned requests.</summary>
    public const string Canary = "canary";

    /// <summary>
    /// The stable version answers every request; a copy of <see cref="Rollout.CandidatePercent"/> % of them also runs on
    /// the candidate, whose answer is compared with the stable one and discarded.
    /// </summary>
    public const string Shadow = "shadow";

    /// <summary>Every mode.</summary>
    public static IReadOnlyList<string> All { get; } = [Canary, Shadow];
}

/// <summary>Whether retries of one request (or requests about one entity) land on the same version.</summary>
public static class StickyModes
{
    /// <summary>Each request is assigned at random.</summary>
    public const string None = "none";

    /// <summary>Requests with the same <c>id</c> go to the same version (requests without an id are assigned at random).</summary>
    public const string RequestId = "request_id";

    /// <summary>Requests with the same <c>parameters.entity_id</c> go to the same version (others at random).</summary>
    public const string Entity = "entity";

    /// <summary>Every mode.</summary>
    public static IReadOnlyList<string> All { get; } = [None, RequestId, Entity];
}

/// <summary>Lifecycle of a rollout.</summary>
public static class RolloutStates
{
    /// <summary>Traffic is split and the controller judges every window.</summary>
    public const string Running = "running";

    /// <summary>A guardrail was breached (or an admin rolled back): the candidate gets nothing; the rule stays in effect.</summary>
    public const string RolledBack = "rolled_back";

    /// <summary>The candidate reached 100 %: it answers every unversioned request; the rule stays in effect.</summary>
    public const string Promoted = "promoted";

    /// <summary>Ended by an admin (or replaced by a newer rollout): routing is back to the newest ready version.</summary>
    public const string Ended = "ended";

    /// <summary>Whether a rollout in <paramref name="state"/> still decides routing.</summary>
    public static bool InEffect(string state) => state is Running or RolledBack or Promoted;
}

/// <summary>Kinds of <see cref="RolloutEvent"/>.</summary>
public static class RolloutEventKinds
{
    /// <summary>The rollout was created.</summary>
    public const string Created = "created";

    /// <summary>An admin changed it (percentage, guardrails, window, steps, stickiness).</summary>
    public const string Updated = "updated";

    /// <summary>A clean window moved the candidate one promotion step up.</summary>
    public const string Step = "step";

    /// <summary>The candidate reached 100 %.</summary>
    public const string Promoted = "promoted";

    /// <summary>A guardrail was breached (or an admin rolled back): the candidate went to 0 %.</summary>
    public const string RolledBack = "rolled_back";

    /// <summary>The rollout was ended (deleted, or replaced by a newer one).</summary>
    public const string Ended = "ended";
}

/// <summary>Who made a rollout change.</summary>
public static class RolloutActors
{
    /// <summary>The automatic controller (guardrails and promotion steps).</summary>
    public const string Controller = "controller";

    /// <summary>A call to AdminApi with the admin key.</summary>
    public const string Admin = "admin";
}

/// <summary>Thresholds a rollout's candidate must stay within over every window; a breach rolls it back at once.</summary>
/// <param name="MaxErrorRate">Largest tolerated share of the candidate's requests answered with a 5xx (0–1); null: not checked.</param>
/// <param name="MaxP95LatencyMs">Largest tolerated 95th percentile of the candidate's latency in milliseconds; null: not checked.</param>
/// <param name="MaxOutputDrift">
/// Shadow mode only: largest tolerated mean, over the window, of each request's largest absolute difference between the
/// candidate's and the stable version's outputs (an output missing or of another shape or datatype is a breach); null:
/// not checked.
/// </param>
/// <param name="MinRequests">Candidate requests a window needs before it is judged (neither rolled back nor promoted on less).</param>
public sealed record RolloutGuardrails(double? MaxErrorRate, double? MaxP95LatencyMs, double? MaxOutputDrift, int MinRequests = RolloutGuardrails.DefaultMinRequests)
{
    /// <summary>Default of <see cref="MinRequests"/>.</summary>
    public const int DefaultMinRequests = 20;

    /// <summary>No thresholds: nothing rolls back automatically; clean windows still promote.</summary>
    public static RolloutGuardrails None { get; } = new(null, null, null);
}

/// <summary>A model's traffic rule between a stable and a candidate version.</summary>
/// <param name="Id">Identity of this rollout (a newer rollout of the same model gets a new one).</param>
/// <param name="Model">Model name.</param>
/// <param name="StableVersion">The version that answers what the candidate does not.</param>
/// <param name="CandidateVersion">The version being rolled out.</param>
/// <param name="Mode"><see cref="RolloutModes.Canary"/> or <see cref="RolloutModes.Shadow"/>.</param>
/// <param name="CandidatePercent">Canary: share of unversioned requests the candidate answers; shadow: share copied to it (0–100).</param>
/// <param name="Sticky">One of <see cref="StickyModes"/>.</param>
/// <param name="Guardrails">Thresholds judged over every window.</param>
/// <param name="Window">How far back each judgement looks, and how long a step must stay clean before the next one.</param>
/// <param name="PromotionSteps">Candidate percentages to move to after each clean window, ascending; empty: no automatic promotion.</param>
/// <param name="State">One of <see cref="RolloutStates"/>.</param>
/// <param name="Generation">Incremented by every change; replicas apply changes in this order.</param>
/// <param name="StepStartedAt">When the current percentage (and mode) took effect: the start of the current window.</param>
/// <param name="CreatedAt">When it was created.</param>
/// <param name="UpdatedAt">When it last changed.</param>
public sealed record Rollout(
    Guid Id,
    string Model,
    long StableVersion,
    long CandidateVersion,
    string Mode,
    double CandidatePercent,
    string Sticky,
    RolloutGuardrails Guardrails,
    TimeSpan Window,
    IReadOnlyList<double> PromotionSteps,
    string State,
    long Generation,
    DateTimeOffset StepStartedAt,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt)
{
    /// <summary>Whether the rule still decides routing (<see cref="RolloutStates.InEffect"/>).</summary>
    public bool InEffect => RolloutStates.InEffect(State);

    /// <summary>Percentage of unversioned requests the candidate answers (0 in shadow mode).</summary>
    public double AnsweringPercent => Mode == RolloutModes.Canary ? CandidatePercent : 0;

    /// <summary>Percentage of unversioned requests copied to the candidate (0 in canary mode).</summary>
    public double ShadowPercent => Mode == RolloutModes.Shadow ? CandidatePercent : 0;

    /// <summary>The promotion step after the current percentage, or null when there is none.</summary>
    public double? NextStep =>
        Mode == RolloutModes.Shadow
            ? PromotionSteps.Count > 0 ? PromotionSteps[0] : null
            : PromotionSteps.Where(s => s > CandidatePercent).Cast<double?>().FirstOrDefault();
}

/// <summary>One version's outcomes over a window, as the controller judged them.</summary>
/// <param name="Requests">Requests (or shadow copies) that got an answer or a failure (client cancellations excluded).</param>
/// <param name="Errors">Of those, answered with a 5xx.</param>
/// <param name="ErrorRate">Errors / requests (0 without requests).</param>
/// <param name="P95LatencyMs">95th percentile latency in milliseconds (an upper bound within 15 %); null without requests.</param>
/// <param name="MeanDrift">Shadow: mean of each compared request's largest absolute output difference; null when none compared.</param>
/// <param name="MaxDrift">Shadow: the largest difference seen; null when none compared.</param>
/// <param name="Compared">Shadow: answers compared with the stable answer.</param>
/// <param name="Mismatches">Shadow: answers whose outputs differ in name, shape or datatype from the stable answer.</param>
public sealed record VersionObservation(long Requests, long Errors, double ErrorRate, double? P95LatencyMs, double? MeanDrift, double? MaxDrift, long Compared, long Mismatches);

/// <summary>What a window showed, for an event or <c>GET</c> of the rollout.</summary>
/// <param name="From">Start of the window.</param>
/// <param name="To">End of the window.</param>
/// <param name="Stable">The stable version's requests.</param>
/// <param name="Candidate">The candidate's answered requests (canary).</param>
/// <param name="Shadow">The candidate's shadow copies.</param>
public sealed record RolloutObservation(DateTimeOffset From, DateTimeOffset To, VersionObservation Stable, VersionObservation Candidate, VersionObservation Shadow);

/// <summary>A step in a rollout's history: stored by AdminApi and listed by <c>GET</c> of the rollout.</summary>
/// <param name="Id">Sequence number (ascending in time).</param>
/// <param name="RolloutId">The rollout.</param>
/// <param name="Model">Model name.</param>
/// <param name="OccurredAt">When.</param>
/// <param name="Kind">One of <see cref="RolloutEventKinds"/>.</param>
/// <param name="Actor">One of <see cref="RolloutActors"/>.</param>
/// <param name="FromPercent">Candidate percentage before.</param>
/// <param name="ToPercent">Candidate percentage after.</param>
/// <param name="Mode">Mode after the change.</param>
/// <param name="Reason">Why, with the guardrail values that decided it.</param>
/// <param name="Observed">The window the decision was based on (controller decisions).</param>
public sealed record RolloutEvent(
    long Id,
    Guid RolloutId,
    string Model,
    DateTimeOffset OccurredAt,
    string Kind,
    string Actor,
    double? FromPercent,
    double ToPercent,
    string Mode,
    string Reason,
    RolloutObservation? Observed);
