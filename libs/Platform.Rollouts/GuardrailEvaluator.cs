using System.Globalization;

namespace Platform.Rollouts;

/// <summary>A change the controller makes to a rollout.</summary>
/// <param name="Kind"><see cref="RolloutEventKinds.RolledBack"/>, <see cref="RolloutEventKinds.Step"/> or <see cref="RolloutEventKinds.Promoted"/>.</param>
/// <param name="ToPercent">The candidate's percentage after it.</param>
/// <param name="Mode">The mode after it (a promotion out of shadow mode makes the rollout a canary).</param>
/// <param name="State">The state after it.</param>
/// <param name="Reason">Why, with the values that decided it.</param>
/// <param name="Observed">The window judged.</param>
public sealed record RolloutDecision(string Kind, double ToPercent, string Mode, string State, string Reason, RolloutObservation Observed);

/// <summary>
/// Judges a running rollout's window: a breached guardrail rolls the candidate back at once (as soon as the window holds
/// <see cref="RolloutGuardrails.MinRequests"/> of its requests); a window that lasted <see cref="Rollout.Window"/> since
/// the current step, held enough requests and breached nothing moves the candidate to the next promotion step. Pure:
/// the controller supplies the outcomes and the time.
/// </summary>
public static class GuardrailEvaluator
{
    /// <summary>
    /// The span judged at <paramref name="now"/>: the last <see cref="Rollout.Window"/>, but not before the current step
    /// began (requests at an earlier percentage or mode say nothing about this one).
    /// </summary>
    public static (DateTimeOffset From, DateTimeOffset To) WindowOf(Rollout rollout, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        var from = now - rollout.Window;
        return (from > rollout.StepStartedAt ? from : rollout.StepStartedAt, now);
    }

    /// <summary>The decision for <paramref name="rollout"/> given its <paramref name="window"/> at <paramref name="now"/>; null: nothing to do.</summary>
    public static RolloutDecision? Evaluate(Rollout rollout, OutcomeWindow window, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        ArgumentNullException.ThrowIfNull(window);
        if (rollout.State != RolloutStates.Running)
        {
            return null;
        }

        var shadow = rollout.Mode == RolloutModes.Shadow;
        var candidate = (shadow ? window.Shadow : window.Candidate).ToObservation();
        var stable = window.Stable.ToObservation();
        var observed = window.ToObservation();
        var guardrails = rollout.Guardrails;
        var span = Seconds(window.To - window.From);
        if (candidate.Requests < guardrails.MinRequests)
        {
            return null;
        }

        var who = shadow ? "shadow" : "candidate";
        if (guardrails.MaxErrorRate is { } maxErrorRate && candidate.ErrorRate > maxErrorRate)
        {
            return Rollback(rollout, observed, Invariant(
                $"{who} error rate {candidate.ErrorRate:0.###} > {maxErrorRate:0.###} ({candidate.Errors} of {candidate.Requests} requests in {span}); stable {stable.ErrorRate:0.###} ({stable.Errors} of {stable.Requests})"));
        }

        if (guardrails.MaxP95LatencyMs is { } maxP95 && candidate.P95LatencyMs is { } p95 && p95 > maxP95)
        {
            return Rollback(rollout, observed, Invariant(
                $"{who} p95 latency {p95:0.#} ms > {maxP95:0.#} ms ({candidate.Requests} requests in {span}); stable p95 {Ms(stable.P95LatencyMs)}"));
        }

        if (shadow && guardrails.MaxOutputDrift is { } maxDrift)
        {
            if (candidate.Mismatches > 0)
            {
                return Rollback(rollout, observed, Invariant(
                    $"{candidate.Mismatches} shadow answers differ from the stable answers in output name, shape or datatype (in {span})"));
            }

            if (candidate.MeanDrift is { } drift && drift > maxDrift)
            {
                return Rollback(rollout, observed, Invariant(
                    $"shadow output drift {drift:G6} > {maxDrift:G6} (mean of the largest absolute difference over {candidate.Compared} compared answers, max {candidate.MaxDrift:0.######}, in {span})"));
            }
        }

        if (now - rollout.StepStartedAt < rollout.Window || rollout.NextStep is not { } next)
        {
            return null;
        }

        var clean = Invariant($"{Seconds(rollout.Window)} window clean over {candidate.Requests} {who} requests: {Summary(guardrails, candidate, shadow)}");
        var from = Invariant($"{(shadow ? "shadow " : string.Empty)}{rollout.CandidatePercent:0.##} %");
        return next >= 100
            ? new RolloutDecision(RolloutEventKinds.Promoted, 100, RolloutModes.Canary, RolloutStates.Promoted, $"{clean}; {from} → 100 %", observed)
            : new RolloutDecision(RolloutEventKinds.Step, next, RolloutModes.Canary, RolloutStates.Running, Invariant($"{clean}; {from} → {next:0.##} %"), observed);
    }

    private static RolloutDecision Rollback(Rollout rollout, RolloutObservation observed, string reason) =>
        new(RolloutEventKinds.RolledBack, 0, rollout.Mode, RolloutStates.RolledBack, reason, observed);

    private static string Summary(RolloutGuardrails guardrails, VersionObservation candidate, bool shadow)
    {
        var parts = new List<string>
        {
            guardrails.MaxErrorRate is { } e ? Invariant($"error rate {candidate.ErrorRate:0.###} ≤ {e:0.###}") : Invariant($"error rate {candidate.ErrorRate:0.###}"),
            guardrails.MaxP95LatencyMs is { } l ? $"p95 {Ms(candidate.P95LatencyMs)} ≤ {Invariant($"{l:0.#}")} ms" : $"p95 {Ms(candidate.P95LatencyMs)}",
        };
        if (shadow)
        {
            parts.Add(guardrails.MaxOutputDrift is { } d
                ? Invariant($"drift {candidate.MeanDrift ?? 0:G6} ≤ {d:G6}")
                : Invariant($"drift {candidate.MeanDrift ?? 0:0.######}"));
        }

        return string.Join(", ", parts);
    }

    private static string Ms(double? value) => value is { } v ? Invariant($"{v:0.#} ms") : "n/a";

    private static string Seconds(TimeSpan span) => Invariant($"{span.TotalSeconds:0.#} s");

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
