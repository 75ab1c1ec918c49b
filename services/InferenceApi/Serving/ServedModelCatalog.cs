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

    /// <summary>Active versions of <paramref name="name"/>, highest first.</summary>
    public IReadOnlyList<ServedModel> ActiveVersions(string name) =>
        view.Current.Models.TryGetValue(name, out var versions) ? [.. versions.Reverse().Select(Convert)] : [];

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
