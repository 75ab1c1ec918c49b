using System.Text.Json;
using Npgsql;
using NpgsqlTypes;

namespace Platform.Rollouts;

/// <summary>What an admin asks for when creating a rollout (validated by AdminApi).</summary>
/// <param name="Model">Model name.</param>
/// <param name="StableVersion">The version that keeps answering.</param>
/// <param name="CandidateVersion">The version rolled out.</param>
/// <param name="Mode">One of <see cref="RolloutModes"/>.</param>
/// <param name="CandidatePercent">0–100.</param>
/// <param name="Sticky">One of <see cref="StickyModes"/>.</param>
/// <param name="Guardrails">Thresholds.</param>
/// <param name="Window">Judgement window.</param>
/// <param name="PromotionSteps">Ascending percentages; empty: no automatic promotion.</param>
public sealed record RolloutSpec(
    string Model,
    long StableVersion,
    long CandidateVersion,
    string Mode,
    double CandidatePercent,
    string Sticky,
    RolloutGuardrails Guardrails,
    TimeSpan Window,
    IReadOnlyList<double> PromotionSteps);

/// <summary>A change to the rollout in effect, with the event that records it.</summary>
/// <param name="Kind">Event kind (<see cref="RolloutEventKinds"/>).</param>
/// <param name="Actor">Who (<see cref="RolloutActors"/>).</param>
/// <param name="Reason">Why.</param>
/// <param name="Apply">The new rollout from the current one (state, percentage, mode, settings); generation, step start and timestamps are set by the store.</param>
/// <param name="NewStep">Whether the change starts a new window (percentage or mode changed, or the rollout resumed).</param>
/// <param name="Observed">The window a controller decision was based on.</param>
/// <param name="ExpectedGeneration">Apply only when the rollout is still at this generation (the controller's decision was made on it).</param>
public sealed record RolloutChangeRequest(
    string Kind,
    string Actor,
    string Reason,
    Func<Rollout, Rollout> Apply,
    bool NewStep,
    RolloutObservation? Observed = null,
    long? ExpectedGeneration = null);

/// <summary>Outcome of <see cref="RolloutStore.ChangeAsync"/>.</summary>
/// <param name="Before">The rollout before the change; null when the model has no rollout in effect.</param>
/// <param name="After">The rollout after it; null when nothing changed.</param>
/// <param name="Event">The recorded event; null when nothing changed.</param>
public sealed record RolloutChangeResult(Rollout? Before, Rollout? After, RolloutEvent? Event);

/// <summary>
/// Rollouts and their events in PostgreSQL (tables <c>model_rollouts</c>, <c>model_rollout_events</c>, created by AdminApi's
/// migration <c>0300_rollouts.sql</c>). Every write happens under the row's lock in one transaction with its event, and
/// increments <see cref="Rollout.Generation"/>.
/// </summary>
public sealed class RolloutStore(NpgsqlDataSource dataSource)
{
    private const string Columns =
        "r.id, r.model_name, r.stable_version, r.candidate_version, r.mode, r.candidate_percent, r.sticky, r.guardrails::text, r.window_ms, " +
        "r.promotion_steps, r.state, r.generation, r.step_started_at, r.created_at, r.updated_at";

    private const string EventColumns =
        "e.id, e.rollout_id, e.model_name, e.occurred_at, e.kind, e.actor, e.from_percent, e.to_percent, e.mode, e.reason, e.observed::text";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Every rollout that decides routing (one per model at most), by model.</summary>
    public async Task<IReadOnlyList<Rollout>> ListInEffectAsync(CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM model_rollouts r WHERE r.state <> 'ended' ORDER BY r.model_name");
        return await ReadAllAsync(command, cancellationToken);
    }

    /// <summary>The newest rollout of every model that has had one (ended ones included), by model.</summary>
    public async Task<IReadOnlyList<Rollout>> ListLatestAsync(CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand(
            $"SELECT DISTINCT ON (r.model_name) {Columns} FROM model_rollouts r ORDER BY r.model_name, r.created_at DESC, r.id");
        return await ReadAllAsync(command, cancellationToken);
    }

    /// <summary>The model's newest rollout (in effect or ended); null when it never had one.</summary>
    public async Task<Rollout?> GetLatestAsync(string model, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand(
            $"SELECT {Columns} FROM model_rollouts r WHERE r.model_name = $1 ORDER BY r.created_at DESC, r.id LIMIT 1");
        command.Parameters.Add(new NpgsqlParameter { Value = model });
        return (await ReadAllAsync(command, cancellationToken)).SingleOrDefault();
    }

    /// <summary>A rollout's events, oldest first.</summary>
    public async Task<IReadOnlyList<RolloutEvent>> GetEventsAsync(Guid rolloutId, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand($"SELECT {EventColumns} FROM model_rollout_events e WHERE e.rollout_id = $1 ORDER BY e.id");
        command.Parameters.Add(new NpgsqlParameter { Value = rolloutId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var events = new List<RolloutEvent>();
        while (await reader.ReadAsync(cancellationToken))
        {
            events.Add(ReadEvent(reader));
        }

        return events;
    }

    /// <summary>
    /// Creates a running rollout from <paramref name="spec"/>; the model's rollout in effect, if any, ends (event
    /// <see cref="RolloutEventKinds.Ended"/>, "replaced by …") in the same transaction.
    /// </summary>
    /// <returns>The new rollout and the one it replaced.</returns>
    public async Task<(Rollout Created, Rollout? Replaced)> CreateAsync(RolloutSpec spec, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var created = new Rollout(Guid.CreateVersion7(now), spec.Model, spec.StableVersion, spec.CandidateVersion, spec.Mode, spec.CandidatePercent,
            spec.Sticky, spec.Guardrails, spec.Window, spec.PromotionSteps, RolloutStates.Running, 1, now, now, now);

        var replaced = await LockInEffectAsync(connection, transaction, spec.Model, cancellationToken);
        if (replaced is not null)
        {
            var ended = replaced with { State = RolloutStates.Ended, Generation = replaced.Generation + 1, UpdatedAt = now };
            await UpdateRowAsync(connection, transaction, ended, cancellationToken);
            await InsertEventAsync(connection, transaction, ended, now, RolloutEventKinds.Ended, RolloutActors.Admin, replaced.CandidatePercent,
                $"replaced by rollout {created.Id}", null, cancellationToken);
        }

        await using (var insert = new NpgsqlCommand(
            "INSERT INTO model_rollouts (id, model_name, stable_version, candidate_version, mode, candidate_percent, sticky, guardrails, window_ms, " +
            "promotion_steps, state, generation, step_started_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            connection, transaction))
        {
            insert.Parameters.Add(new NpgsqlParameter { Value = created.Id });
            insert.Parameters.Add(new NpgsqlParameter { Value = created.Model });
            AddRowParameters(insert, created);
            insert.Parameters.Add(new NpgsqlParameter { Value = created.CreatedAt });
            insert.Parameters.Add(new NpgsqlParameter { Value = created.UpdatedAt });
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        await InsertEventAsync(connection, transaction, created, now, RolloutEventKinds.Created, RolloutActors.Admin, null,
            replaced is null ? "created" : $"created, replacing rollout {replaced.Id}", null, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return (created, replaced);
    }

    /// <summary>
    /// Changes the model's rollout in effect under its row lock and records the event. Nothing changes when the model has
    /// no rollout in effect or (with <see cref="RolloutChangeRequest.ExpectedGeneration"/>) it changed meanwhile.
    /// </summary>
    public async Task<RolloutChangeResult> ChangeAsync(string model, RolloutChangeRequest change, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(change);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var current = await LockInEffectAsync(connection, transaction, model, cancellationToken);
        if (current is null || (change.ExpectedGeneration is { } expected && current.Generation != expected))
        {
            return new RolloutChangeResult(current, null, null);
        }

        var next = change.Apply(current) with
        {
            Id = current.Id,
            Model = current.Model,
            Generation = current.Generation + 1,
            StepStartedAt = change.NewStep ? now : current.StepStartedAt,
            CreatedAt = current.CreatedAt,
            UpdatedAt = now,
        };
        await UpdateRowAsync(connection, transaction, next, cancellationToken);
        var recorded = await InsertEventAsync(connection, transaction, next, now, change.Kind, change.Actor, current.CandidatePercent, change.Reason,
            change.Observed, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return new RolloutChangeResult(current, next, recorded);
    }

    private static async Task<Rollout?> LockInEffectAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string model, CancellationToken cancellationToken)
    {
        await using var select = new NpgsqlCommand($"SELECT {Columns} FROM model_rollouts r WHERE r.model_name = $1 AND r.state <> 'ended' FOR UPDATE",
            connection, transaction);
        select.Parameters.Add(new NpgsqlParameter { Value = model });
        return (await ReadAllAsync(select, cancellationToken)).SingleOrDefault();
    }

    private static async Task UpdateRowAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Rollout rollout, CancellationToken cancellationToken)
    {
        await using var update = new NpgsqlCommand(
            "UPDATE model_rollouts SET stable_version = $3, candidate_version = $4, mode = $5, candidate_percent = $6, sticky = $7, guardrails = $8, " +
            "window_ms = $9, promotion_steps = $10, state = $11, generation = $12, step_started_at = $13, updated_at = $14 WHERE id = $1 AND model_name = $2",
            connection, transaction);
        update.Parameters.Add(new NpgsqlParameter { Value = rollout.Id });
        update.Parameters.Add(new NpgsqlParameter { Value = rollout.Model });
        AddRowParameters(update, rollout);
        update.Parameters.Add(new NpgsqlParameter { Value = rollout.UpdatedAt });
        await update.ExecuteNonQueryAsync(cancellationToken);
    }

    // $3..$13 of both statements, in column order.
    private static void AddRowParameters(NpgsqlCommand command, Rollout rollout)
    {
        command.Parameters.Add(new NpgsqlParameter { Value = rollout.StableVersion });
        command.Parameters.Add(new NpgsqlParameter { Value = rollout.CandidateVersion });
        command.Parameters.Add(new NpgsqlParameter { Value = rollout.Mode });
        command.Parameters.Add(new NpgsqlParameter { Value = rollout.CandidatePercent });
        command.Parameters.Add(new NpgsqlParameter { Value = rollout.Sticky });
        command.Parameters.Add(new NpgsqlParameter { Value = JsonSerializer.Serialize(rollout.Guardrails, Json), NpgsqlDbType = NpgsqlDbType.Jsonb });
        command.Parameters.Add(new NpgsqlParameter { Value = (long)rollout.Window.TotalMilliseconds });
        command.Parameters.Add(new NpgsqlParameter { Value = rollout.PromotionSteps.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Double });
        command.Parameters.Add(new NpgsqlParameter { Value = rollout.State });
        command.Parameters.Add(new NpgsqlParameter { Value = rollout.Generation });
        command.Parameters.Add(new NpgsqlParameter { Value = rollout.StepStartedAt });
    }

    private static async Task<RolloutEvent> InsertEventAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Rollout rollout, DateTimeOffset now,
        string kind, string actor, double? fromPercent, string reason, RolloutObservation? observed, CancellationToken cancellationToken)
    {
        await using var insert = new NpgsqlCommand(
            "INSERT INTO model_rollout_events (rollout_id, model_name, occurred_at, kind, actor, from_percent, to_percent, mode, reason, observed) " +
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id", connection, transaction);
        insert.Parameters.Add(new NpgsqlParameter { Value = rollout.Id });
        insert.Parameters.Add(new NpgsqlParameter { Value = rollout.Model });
        insert.Parameters.Add(new NpgsqlParameter { Value = now });
        insert.Parameters.Add(new NpgsqlParameter { Value = kind });
        insert.Parameters.Add(new NpgsqlParameter { Value = actor });
        insert.Parameters.Add(new NpgsqlParameter { Value = (object?)fromPercent ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Double });
        insert.Parameters.Add(new NpgsqlParameter { Value = rollout.CandidatePercent });
        insert.Parameters.Add(new NpgsqlParameter { Value = rollout.Mode });
        insert.Parameters.Add(new NpgsqlParameter { Value = reason });
        insert.Parameters.Add(new NpgsqlParameter
        {
            Value = observed is null ? DBNull.Value : JsonSerializer.Serialize(observed, Json),
            NpgsqlDbType = NpgsqlDbType.Jsonb,
        });
        var id = (long)(await insert.ExecuteScalarAsync(cancellationToken))!;
        return new RolloutEvent(id, rollout.Id, rollout.Model, now, kind, actor, fromPercent, rollout.CandidatePercent, rollout.Mode, reason, observed);
    }

    private static async Task<IReadOnlyList<Rollout>> ReadAllAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rollouts = new List<Rollout>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rollouts.Add(new Rollout(
                reader.GetGuid(0),
                reader.GetString(1),
                reader.GetInt64(2),
                reader.GetInt64(3),
                reader.GetString(4),
                reader.GetDouble(5),
                reader.GetString(6),
                JsonSerializer.Deserialize<RolloutGuardrails>(reader.GetString(7), Json) ?? RolloutGuardrails.None,
                TimeSpan.FromMilliseconds(reader.GetInt64(8)),
                reader.GetFieldValue<double[]>(9),
                reader.GetString(10),
                reader.GetInt64(11),
                reader.GetFieldValue<DateTimeOffset>(12),
                reader.GetFieldValue<DateTimeOffset>(13),
                reader.GetFieldValue<DateTimeOffset>(14)));
        }

        return rollouts;
    }

    private static RolloutEvent ReadEvent(NpgsqlDataReader reader) => new(
        reader.GetInt64(0),
        reader.GetGuid(1),
        reader.GetString(2),
        reader.GetFieldValue<DateTimeOffset>(3),
        reader.GetString(4),
        reader.GetString(5),
        reader.IsDBNull(6) ? null : reader.GetDouble(6),
        reader.GetDouble(7),
        reader.GetString(8),
        reader.GetString(9),
        reader.IsDBNull(10) ? null : JsonSerializer.Deserialize<RolloutObservation>(reader.GetString(10), Json));
}
