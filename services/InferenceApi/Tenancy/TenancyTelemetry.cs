using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Platform.Tenancy;
using Platform.Tenancy.Enforcement;

namespace Platform.InferenceApi.Tenancy;

/// <summary>
/// Attribution and cost telemetry, following the OpenTelemetry GenAI conventions where they fit. Metrics carry team,
/// project, environment and tenant name (bounded: tenants are created by admins); the customer id goes on spans only.
/// </summary>
public sealed class TenancyTelemetry
{
    /// <summary>Meter name (collected by ServiceDefaults through the <c>Platform.</c> prefix).</summary>
    public const string MeterName = "Platform.InferenceApi.Tenancy";

    /// <summary><c>gen_ai.operation.name</c> of a model inference: the GenAI list has no value for a classic model run.</summary>
    public const string OperationName = "inference";

    /// <summary><c>gen_ai.provider.name</c>: the models are served by this platform, not a hosted provider.</summary>
    public const string ProviderName = "platform";

    private readonly Histogram<double> _operationDuration;
    private readonly Counter<double> _cost;
    private readonly Counter<long> _alerts;
    private readonly Counter<long> _refusals;
    private readonly Histogram<double> _enforcement;
    private readonly Counter<long> _overlapped;
    private readonly ConcurrentDictionary<Guid, Measurement<double>> _budgetRatios = new();

    /// <summary>Creates the instruments.</summary>
    public TenancyTelemetry(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(MeterName);
        _operationDuration = meter.CreateHistogram<double>("gen_ai.client.operation.duration", unit: "s",
            description: "Duration of inference operations as the API's clients see them, by model, status and tenant attribution",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        _cost = meter.CreateCounter<double>("platform.tenant.cost", unit: "{currency}", description: "Cost charged to tenants, in the price's currency");
        _alerts = meter.CreateCounter<long>("platform.tenant.budget.alerts", description: "Budget thresholds crossed (soft thresholds and exhaustion)");
        _refusals = meter.CreateCounter<long>("platform.tenant.refusals", description: "Requests refused by enforcement, by reason");
        _enforcement = meter.CreateHistogram<double>("platform.inference_api.enforcement.duration", unit: "s",
            description: "Time enforcement adds to a request, by phase (authenticate, admit, record)",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05] });
        _overlapped = meter.CreateCounter<long>("platform.inference_api.admission.overlapped",
            description: "Inferences served while their admission was on its way, by the admission's outcome (admitted, refused)");
        meter.CreateObservableGauge("platform.tenant.budget.used_ratio", () => _budgetRatios.Values,
            description: "Share of the tenant's current budget period already spent (1 = exhausted)");
    }

    /// <summary>Tags every tenancy metric carries.</summary>
    public static TagList Attribution(Tenant tenant)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        return new TagList
        {
            { "platform.tenant", tenant.Name },
            { "platform.team", tenant.Team ?? string.Empty },
            { "platform.project", tenant.Project ?? string.Empty },
            { "platform.environment", tenant.Environment ?? string.Empty },
        };
    }

    /// <summary>Puts the caller and GenAI attributes on the request's span.</summary>
    public static void Annotate(Activity? activity, TenantContext caller, string model)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (activity is null || !activity.IsAllDataRequested)
        {
            return;
        }

        activity.SetTag("gen_ai.operation.name", OperationName);
        activity.SetTag("gen_ai.provider.name", ProviderName);
        activity.SetTag("gen_ai.request.model", model);
        activity.SetTag("platform.tenant.id", caller.Tenant.Id.ToString());
        activity.SetTag("platform.tenant", caller.Tenant.Name);
        activity.SetTag("platform.team", caller.Tenant.Team);
        activity.SetTag("platform.project", caller.Tenant.Project);
        activity.SetTag("platform.environment", caller.Tenant.Environment);
        activity.SetTag("platform.customer", caller.Tenant.Customer);
        activity.SetTag("platform.cost_center", caller.Tenant.CostCenter);
        activity.SetTag("platform.api_key.prefix", caller.KeyPrefix);
    }

    /// <summary>A finished inference request of an authenticated caller.</summary>
    public void Operation(Tenant tenant, string model, int status, TimeSpan duration)
    {
        var tags = Attribution(tenant);
        tags.Add("gen_ai.operation.name", OperationName);
        tags.Add("gen_ai.provider.name", ProviderName);
        tags.Add("gen_ai.request.model", model);
        if (status != 200)
        {
            tags.Add("error.type", status.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        _operationDuration.Record(duration.TotalSeconds, tags);
    }

    /// <summary>A cost charged to <paramref name="tenant"/>.</summary>
    public void Cost(Tenant tenant, string model, decimal amount, string currency)
    {
        if (amount <= 0)
        {
            return;
        }

        var tags = Attribution(tenant);
        tags.Add("gen_ai.request.model", model);
        tags.Add("currency", currency);
        _cost.Add((double)amount, tags);
    }

    /// <summary>The latest known budget consumption of <paramref name="tenant"/>.</summary>
    public void BudgetUsed(Tenant tenant, BudgetState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var tags = Attribution(tenant);
        tags.Add("platform.budget.period", state.Budget.Period);
        _budgetRatios[tenant.Id] = new Measurement<double>(state.UsedRatio, tags);
    }

    /// <summary>A crossed budget threshold.</summary>
    public void Alert(Tenant tenant, BudgetEvent budgetEvent)
    {
        ArgumentNullException.ThrowIfNull(budgetEvent);
        var tags = Attribution(tenant);
        tags.Add("platform.budget.event", budgetEvent.Kind);
        tags.Add("platform.budget.threshold", budgetEvent.Threshold);
        _alerts.Add(1, tags);
    }

    /// <summary>A request refused by enforcement (<paramref name="reason"/>: rate_limit, budget, model_not_allowed, revoked, expired).</summary>
    public void Refused(Tenant tenant, string reason)
    {
        var tags = Attribution(tenant);
        tags.Add("reason", reason);
        _refusals.Add(1, tags);
    }

    /// <summary>An inference served while its admission was on its way, and whether the admission let it through.</summary>
    public void Overlapped(bool admitted) =>
        _overlapped.Add(1, new KeyValuePair<string, object?>("outcome", admitted ? "admitted" : "refused"));

    /// <summary>Time spent in an enforcement phase.</summary>
    public void Phase(string phase, TimeSpan duration) =>
        _enforcement.Record(duration.TotalSeconds, new KeyValuePair<string, object?>("phase", phase));
}
