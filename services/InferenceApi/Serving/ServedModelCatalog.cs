using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;
using Platform.Inference.OpenInference;
using Platform.Inference.Protocol;
using Platform.ModelRegistry;

namespace Platform.InferenceApi.Serving;

/// <summary>A model version the API can route to, with its signature in protocol types.</summary>
/// <param name="Name">Model name.</param>
/// <param name="Version">Version number.</param>
/// <param name="Signature">Inputs and outputs.</param>
/// <param name="Settings">Model settings (cache on/off and TTL).</param>
public sealed record ServedModel(string Name, long Version, ModelSignature Signature, ModelSettings Settings);

/// <summary>
/// The active models as the registry's in-memory view reports them (no database round trip per request), with the
/// signatures converted once per version.
/// </summary>
public sealed class ServedModelCatalog(IActiveModelsView view, TimeProvider timeProvider, IOptions<InferenceApiOptions> options)
{
    // Keyed by the view's record instance: a registry refresh brings new instances (possibly new settings), converted once each.
    private readonly ConditionalWeakTable<ActiveModelVersion, ServedModel> _converted = new();

    // The fallback route of each newest version, per registry snapshot: built once, not per request.
    private readonly ConditionalWeakTable<ActiveModelVersion, IReadOnlyList<ServedModel>> _routes = new();
    private long _lastForcedRefresh;

    /// <summary>Whether the registry has been read at least once.</summary>
    public bool Loaded => view.Current.RefreshedAt > DateTimeOffset.MinValue;

    /// <summary>
    /// The active version to serve: <paramref name="version"/> when it is active, else with null the highest active
    /// version. A miss re-reads the registry (rate-limited) in case an activation has not been announced yet.
    /// </summary>
    public async ValueTask<ServedModel?> FindAsync(string name, long? version, CancellationToken cancellationToken)
    {
        var active = view.Current.Find(name, version);
        if (active is null && ShouldRefresh())
        {
            try
            {
                await view.RefreshAsync(cancellationToken);
                active = view.Current.Find(name, version);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The registry is unreachable: answer from the view we have (its monitor keeps retrying and logging).
            }
        }

        return active is null ? null : Convert(active);
    }

    /// <summary>
    /// The version a request names: <paramref name="versionText"/> when given (it must be active), else the newest
    /// active one; a 404 naming what is missing otherwise.
    /// </summary>
    public async Task<(ServedModel? Model, InferenceFailure? Failure)> ResolveAsync(string name, string? versionText, CancellationToken cancellationToken)
    {
        var (version, invalid) = ParseVersion(name, versionText);
        if (invalid is not null)
        {
            return (null, invalid);
        }

        var model = await FindAsync(name, version, cancellationToken);
        if (model is not null)
        {
            return (model, null);
        }

        var message = version is null || ActiveVersions(name).Count == 0
            ? $"unknown model '{name}' (no active version)"
            : $"model '{name}' has no active version {version}";
        return (null, new InferenceFailure(404, message));
    }

    /// <summary>Parses a version of a URL or message: null when absent, a 404 when not a number.</summary>
    public static (long? Version, InferenceFailure? Failure) ParseVersion(string name, string? versionText)
    {
        if (string.IsNullOrEmpty(versionText))
        {
            return (null, null);
        }

        return long.TryParse(versionText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var parsed)
            ? (parsed, null)
            : (null, new InferenceFailure(404, $"model '{name}' has no version '{versionText}'"));
    }

    /// <summary>
    /// <paramref name="newest"/> followed by the other active versions of its model, highest first: an unversioned
    /// request's route without a rollout. Cached per registry snapshot (the same instance until the registry changes).
    /// </summary>
    public IReadOnlyList<ServedModel> RouteFrom(ServedModel newest)
    {
        ArgumentNullException.ThrowIfNull(newest);
        if (view.Current.Find(newest.Name, newest.Version) is not { } active)
        {
            // The registry moved on since the request resolved its version: a route of the moment, not cached.
            return Route(newest);
        }

        if (!_routes.TryGetValue(active, out var route))
        {
            route = Route(Convert(active));
            _routes.AddOrUpdate(active, route);
        }

        return route;
    }

    private IReadOnlyList<ServedModel> Route(ServedModel first) => [first, .. ActiveVersions(first.Name).Where(m => m.Version != first.Version)];

    /// <summary>Active versions of <paramref name="name"/>, highest first.</summary>
    public IReadOnlyList<ServedModel> ActiveVersions(string name) =>
        view.Current.Models.TryGetValue(name, out var versions) ? [.. versions.Reverse().Select(Convert)] : [];

    /// <summary>Every active version of every model, by name then version.</summary>
    public IReadOnlyList<ServedModel> AllActive() =>
        [.. view.Current.Models.OrderBy(m => m.Key, StringComparer.Ordinal).SelectMany(m => m.Value.Select(Convert))];

    /// <summary>Re-reads the registry now (after a worker said a version is gone).</summary>
    public Task RefreshAsync(CancellationToken cancellationToken) => view.RefreshAsync(cancellationToken);

    private bool ShouldRefresh()
    {
        var now = timeProvider.GetTimestamp();
        var last = Interlocked.Read(ref _lastForcedRefresh);
        var interval = (long)(options.Value.UnknownModelRefreshInterval.TotalSeconds * timeProvider.TimestampFrequency);
        return (last == 0 || now - last >= interval) && Interlocked.CompareExchange(ref _lastForcedRefresh, now, last) == last;
    }

    private ServedModel Convert(ActiveModelVersion active) =>
        _converted.GetValue(active, static a => new ServedModel(
            a.Name,
            a.Version.Version,
            new ModelSignature([.. a.Version.Inputs.Select(ToSpec)], [.. a.Version.Outputs.Select(ToSpec)]),
            a.Settings));

    private static TensorSpec ToSpec(ModelTensorSpec spec) =>
        new(spec.Name, DataTypes.TryParse(spec.Datatype, out var type) ? type : throw new InvalidOperationException(
            $"registry datatype '{spec.Datatype}' of '{spec.Name}' is not a protocol datatype"), [.. spec.Shape]);
}
