using System.Text.Json;
using Platform.ModelRegistry;
using Platform.Rollouts;

namespace Platform.AdminApi;

/// <summary>A rollout as AdminApi shows it, with its history.</summary>
/// <param name="Id">Rollout id.</param>
/// <param name="Model">Model name.</param>
/// <param name="StableVersion">Version answering what the candidate does not.</param>
/// <param name="CandidateVersion">Version rolled out.</param>
/// <param name="Mode">canary or shadow.</param>
/// <param name="CandidatePercent">Canary: share of unversioned requests the candidate answers; shadow: share copied to it.</param>
/// <param name="Sticky">none, request_id or entity.</param>
/// <param name="Guardrails">Thresholds judged over every window.</param>
/// <param name="WindowSeconds">Judgement window.</param>
/// <param name="PromotionSteps">Percentages a clean window moves the candidate through.</param>
/// <param name="State">running, rolled_back, promoted or ended.</param>
/// <param name="Generation">Incremented by every change.</param>
/// <param name="StepStartedAt">When the current percentage took effect.</param>
/// <param name="CreatedAt">When it was created.</param>
/// <param name="UpdatedAt">When it last changed.</param>
/// <param name="Events">Every change, oldest first, with its reason.</param>
internal sealed record RolloutResponse(
    Guid Id,
    string Model,
    long StableVersion,
    long CandidateVersion,
    string Mode,
    double CandidatePercent,
    string Sticky,
    RolloutGuardrails Guardrails,
    double WindowSeconds,
    IReadOnlyList<double> PromotionSteps,
    string State,
    long Generation,
    DateTimeOffset StepStartedAt,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    IReadOnlyList<RolloutEvent> Events)
{
    public static RolloutResponse From(Rollout r, IReadOnlyList<RolloutEvent> events) => new(
        r.Id, r.Model, r.StableVersion, r.CandidateVersion, r.Mode, r.CandidatePercent, r.Sticky, r.Guardrails, r.Window.TotalSeconds, r.PromotionSteps,
        r.State, r.Generation, r.StepStartedAt, r.CreatedAt, r.UpdatedAt, events);
}

/// <summary>
/// Model rollouts under <c>/api/models/{name}/rollout</c> (admin key): <c>PUT</c> starts one (replacing the one in
/// effect), <c>GET</c> shows it with every event, <c>PATCH</c> changes it, <c>POST …/rollback</c> sends the candidate to 0 %,
/// <c>DELETE</c> ends it (routing goes back to the newest active version). Every change is announced to InferenceApi.
/// </summary>
internal static partial class RolloutEndpoints
{
    private const string StableVersionField = "stableVersion";
    private const string CandidateVersionField = "candidateVersion";
    private const string ModeField = "mode";
    private const string PercentField = "candidatePercent";
    private const string StickyField = "sticky";
    private const string GuardrailsField = "guardrails";
    private const string WindowField = "windowSeconds";
    private const string StepsField = "promotionSteps";

    private static readonly string[] CreateFields = [StableVersionField, CandidateVersionField, ModeField, PercentField, StickyField, GuardrailsField, WindowField, StepsField];
    private static readonly string[] PatchFields = [ModeField, PercentField, StickyField, GuardrailsField, WindowField, StepsField];
    private static readonly string[] GuardrailFields = ["maxErrorRate", "maxP95LatencyMs", "maxOutputDrift", "minRequests"];

    /// <summary>Default judgement window.</summary>
    public static readonly TimeSpan DefaultWindow = TimeSpan.FromMinutes(5);

    public static void MapRolloutEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var api = endpoints.MapGroup("/api/models/{name}/rollout").AddEndpointFilter<AdminKeyFilter>();
        api.MapPut("/", CreateAsync);
        api.MapGet("/", GetAsync);
        api.MapPatch("/", PatchAsync);
        api.MapPost("/rollback", RollbackAsync);
        api.MapDelete("/", EndAsync);
    }

    private static async Task<IResult> CreateAsync(string name, HttpContext context, RolloutStore store, RolloutNotifications notifications,
        IModelRegistryReader registry, TimeProvider time, ILoggerFactory loggers, CancellationToken ct)
    {
        if (ModelNames.Validate(name) is { } problem)
        {
            return RegistryEndpoints.BadRequest($"name: '{name}' {problem}");
        }

        var (body, error) = await JsonBody.ReadAsync(context.Request, emptyAllowed: false, CreateFields, ct);
        if (body is null)
        {
            return RegistryEndpoints.BadRequest(error!);
        }

        var stable = Version(body, StableVersionField, required: true);
        var candidate = Version(body, CandidateVersionField, required: true);
        var mode = Choice(body, ModeField, RolloutModes.All) ?? RolloutModes.Canary;
        var percent = Percent(body, PercentField, required: true) ?? 0;
        var sticky = Choice(body, StickyField, StickyModes.All) ?? StickyModes.None;
        var guardrails = Guardrails(body) ?? RolloutGuardrails.None;
        var window = Window(body) ?? DefaultWindow;
        var steps = Steps(body) ?? [];
        if (body.Error is null && stable == candidate)
        {
            body.Fail($"{CandidateVersionField}: must differ from {StableVersionField} ({stable})");
        }

        if (body.Error is not null)
        {
            return RegistryEndpoints.BadRequest(body.Error);
        }

        if (await registry.GetModelAsync(name, ct) is null)
        {
            return Results.NotFound(new ApiError($"name: no model '{name}'"));
        }

        foreach (var (field, version) in new[] { (StableVersionField, stable!.Value), (CandidateVersionField, candidate!.Value) })
        {
            if (await registry.GetVersionAsync(name, version, ct) is null)
            {
                return Results.NotFound(new ApiError($"{field}: model '{name}' has no version {version}"));
            }
        }

        var (created, replaced) = await store.CreateAsync(
            new RolloutSpec(name, stable!.Value, candidate!.Value, mode, percent, sticky, guardrails, window, steps), time.GetUtcNow(), ct);
        LogCreated(loggers.CreateLogger("Platform.AdminApi.Rollouts"), name, created.Id, created.Mode, created.StableVersion, created.CandidateVersion,
            created.CandidatePercent, replaced?.Id);
        await notifications.PublishAsync(name, ct);
        return Results.Created($"/api/models/{Uri.EscapeDataString(name)}/rollout", RolloutResponse.From(created, await store.GetEventsAsync(created.Id, ct)));
    }

    private static async Task<IResult> GetAsync(string name, RolloutStore store, CancellationToken ct)
    {
        if (ModelNames.Validate(name) is { } problem)
        {
            return RegistryEndpoints.BadRequest($"name: '{name}' {problem}");
        }

        return await store.GetLatestAsync(name, ct) is { } rollout
            ? Results.Ok(RolloutResponse.From(rollout, await store.GetEventsAsync(rollout.Id, ct)))
            : NoRollout(name);
    }

    private static async Task<IResult> PatchAsync(string name, HttpContext context, RolloutStore store, RolloutNotifications notifications,
        TimeProvider time, ILoggerFactory loggers, CancellationToken ct)
    {
        if (ModelNames.Validate(name) is { } problem)
        {
            return RegistryEndpoints.BadRequest($"name: '{name}' {problem}");
        }

        var (body, error) = await JsonBody.ReadAsync(context.Request, emptyAllowed: false, PatchFields, ct);
        if (body is null)
        {
            return RegistryEndpoints.BadRequest(error!);
        }

        var mode = Choice(body, ModeField, RolloutModes.All);
        var percent = Percent(body, PercentField, required: false);
        var sticky = Choice(body, StickyField, StickyModes.All);
        var guardrails = Guardrails(body);
        var window = Window(body);
        var steps = Steps(body);
        if (body.Error is not null)
        {
            return RegistryEndpoints.BadRequest(body.Error);
        }

        var changed = string.Join(", ", PatchFields.Where(body.Has));
        var newStep = mode is not null || percent is not null;
        var result = await store.ChangeAsync(name, new RolloutChangeRequest(
            RolloutEventKinds.Updated,
            RolloutActors.Admin,
            $"admin changed {changed}",
            current => current with
            {
                Mode = mode ?? current.Mode,
                CandidatePercent = percent ?? current.CandidatePercent,
                Sticky = sticky ?? current.Sticky,
                Guardrails = guardrails ?? current.Guardrails,
                Window = window ?? current.Window,
                PromotionSteps = steps ?? current.PromotionSteps,
                // A new percentage (or mode) set by hand resumes a rolled-back or promoted rollout under the guardrails.
                State = newStep ? RolloutStates.Running : current.State,
            },
            newStep), time.GetUtcNow(), ct);
        if (result.After is null)
        {
            return NoRolloutInEffect(name);
        }

        LogChanged(loggers.CreateLogger("Platform.AdminApi.Rollouts"), name, result.After.Id, result.Event!.Kind, result.Event.FromPercent, result.After.CandidatePercent,
            result.Event.Reason);
        await notifications.PublishAsync(name, ct);
        return Results.Ok(RolloutResponse.From(result.After, await store.GetEventsAsync(result.After.Id, ct)));
    }

    private static async Task<IResult> RollbackAsync(string name, RolloutStore store, RolloutNotifications notifications, TimeProvider time,
        ILoggerFactory loggers, CancellationToken ct)
    {
        if (ModelNames.Validate(name) is { } problem)
        {
            return RegistryEndpoints.BadRequest($"name: '{name}' {problem}");
        }

        var result = await store.ChangeAsync(name, new RolloutChangeRequest(
            RolloutEventKinds.RolledBack, RolloutActors.Admin, "rolled back by an admin",
            current => current with { CandidatePercent = 0, State = RolloutStates.RolledBack }, NewStep: true), time.GetUtcNow(), ct);
        if (result.After is null)
        {
            return NoRolloutInEffect(name);
        }

        LogChanged(loggers.CreateLogger("Platform.AdminApi.Rollouts"), name, result.After.Id, result.Event!.Kind, result.Event.FromPercent, 0, result.Event.Reason);
        await notifications.PublishAsync(name, ct);
        return Results.Ok(RolloutResponse.From(result.After, await store.GetEventsAsync(result.After.Id, ct)));
    }

    private static async Task<IResult> EndAsync(string name, RolloutStore store, RolloutNotifications notifications, TimeProvider time,
        ILoggerFactory loggers, CancellationToken ct)
    {
        if (ModelNames.Validate(name) is { } problem)
        {
            return RegistryEndpoints.BadRequest($"name: '{name}' {problem}");
        }

        var result = await store.ChangeAsync(name, new RolloutChangeRequest(
            RolloutEventKinds.Ended, RolloutActors.Admin, "ended by an admin",
            current => current with { State = RolloutStates.Ended }, NewStep: false), time.GetUtcNow(), ct);
        if (result.After is null)
        {
            return NoRolloutInEffect(name);
        }

        LogChanged(loggers.CreateLogger("Platform.AdminApi.Rollouts"), name, result.After.Id, result.Event!.Kind, result.Event.FromPercent,
            result.After.CandidatePercent, result.Event.Reason);
        await notifications.PublishAsync(name, ct);
        return Results.NoContent();
    }

    private static long? Version(JsonBody body, string field, bool required)
    {
        var value = body.Decimal(field);
        if (body.Error is not null)
        {
            return null;
        }

        if (value is null)
        {
            if (required)
            {
                body.Fail($"{field}: is required");
            }

            return null;
        }

        if (value < 1 || value != decimal.Truncate(value.Value) || value > long.MaxValue)
        {
            body.Fail($"{field}: {value} is not a positive integer");
            return null;
        }

        return (long)value.Value;
    }

    private static double? Percent(JsonBody body, string field, bool required)
    {
        var value = body.Decimal(field);
        if (body.Error is not null)
        {
            return null;
        }

        if (value is null)
        {
            if (required)
            {
                body.Fail($"{field}: is required (0 to 100)");
            }

            return null;
        }

        if (value is < 0 or > 100)
        {
            body.Fail($"{field}: {value} is not between 0 and 100");
            return null;
        }

        return (double)value.Value;
    }

    private static string? Choice(JsonBody body, string field, IReadOnlyList<string> allowed)
    {
        var value = body.Text(field, 32);
        if (value is not null && !allowed.Contains(value))
        {
            body.Fail($"{field}: '{value}' is not one of {string.Join(", ", allowed)}");
            return null;
        }

        return value;
    }

    private static TimeSpan? Window(JsonBody body)
    {
        var value = body.Decimal(WindowField);
        if (value is null || body.Error is not null)
        {
            return null;
        }

        if (value is < 1 or > 86_400)
        {
            body.Fail($"{WindowField}: {value} is not between 1 and 86400 seconds");
            return null;
        }

        return TimeSpan.FromSeconds((double)value.Value);
    }

    private static IReadOnlyList<double>? Steps(JsonBody body)
    {
        var steps = body.Numbers(StepsField);
        if (steps is null || body.Error is not null)
        {
            return null;
        }

        for (var i = 0; i < steps.Count; i++)
        {
            if (steps[i] is <= 0 or > 100)
            {
                body.Fail($"{StepsField}[{i}]: {steps[i]} is not above 0 and at most 100");
                return null;
            }

            if (i > 0 && steps[i] <= steps[i - 1])
            {
                body.Fail($"{StepsField}[{i}]: {steps[i]} must be above the previous step ({steps[i - 1]})");
                return null;
            }
        }

        return steps;
    }

    private static RolloutGuardrails? Guardrails(JsonBody body)
    {
        if (body.Object(GuardrailsField) is not { } element || body.Error is not null)
        {
            return null;
        }

        double? maxErrorRate = null, maxP95 = null, maxDrift = null;
        var minRequests = RolloutGuardrails.DefaultMinRequests;
        foreach (var property in element.EnumerateObject())
        {
            var name = GuardrailFields.FirstOrDefault(f => string.Equals(f, property.Name, StringComparison.OrdinalIgnoreCase));
            var path = $"{GuardrailsField}.{property.Name}";
            if (name is null)
            {
                body.Fail($"{path}: unknown field (expected {string.Join(", ", GuardrailFields)})");
                return null;
            }

            if (property.Value.ValueKind == JsonValueKind.Null)
            {
                continue;
            }

            if (property.Value.ValueKind != JsonValueKind.Number || !property.Value.TryGetDouble(out var number) || number < 0 || !double.IsFinite(number))
            {
                body.Fail($"{path}: must be a number at least 0");
                return null;
            }

            switch (name)
            {
                case "maxErrorRate" when number > 1:
                    body.Fail($"{path}: {number} is a share between 0 and 1");
                    return null;
                case "maxErrorRate":
                    maxErrorRate = number;
                    break;
                case "maxP95LatencyMs":
                    maxP95 = number;
                    break;
                case "maxOutputDrift":
                    maxDrift = number;
                    break;
                default:
                    if (number < 1 || number != Math.Floor(number) || number > 1_000_000)
                    {
                        body.Fail($"{path}: {number} is not an integer between 1 and 1000000");
                        return null;
                    }

                    minRequests = (int)number;
                    break;
            }
        }

        return new RolloutGuardrails(maxErrorRate, maxP95, maxDrift, minRequests);
    }

    private static IResult NoRollout(string name) => Results.NotFound(new ApiError($"name: model '{name}' has never had a rollout"));

    private static IResult NoRolloutInEffect(string name) => Results.NotFound(new ApiError($"name: model '{name}' has no rollout in effect"));

    [LoggerMessage(EventId = 20, Level = LogLevel.Information,
        Message = "Rollout {RolloutId} of {Model} created: {Mode}, stable {StableVersion}, candidate {CandidateVersion} at {CandidatePercent} % (replaced {ReplacedId})")]
    private static partial void LogCreated(ILogger logger, string model, Guid rolloutId, string mode, long stableVersion, long candidateVersion, double candidatePercent,
        Guid? replacedId);

    [LoggerMessage(EventId = 21, Level = LogLevel.Information, Message = "Rollout {RolloutId} of {Model} {Kind}: {FromPercent} % -> {ToPercent} %: {Reason}")]
    private static partial void LogChanged(ILogger logger, string model, Guid rolloutId, string kind, double? fromPercent, double toPercent, string reason);
}
