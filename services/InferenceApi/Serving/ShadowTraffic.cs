using System.Diagnostics.Metrics;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Microsoft.Extensions.Options;
using Platform.Inference.OpenInference;
using Platform.Inference.Protocol;
using Platform.Inference.Protocol.Wire;
using DataType = Platform.Inference.Protocol.DataType;
using Platform.Inference.Routing;
using Platform.Rollouts;

namespace Platform.InferenceApi.Serving;

/// <summary>
/// Shadow copies of a rollout: after the stable version answered, the same request runs on the candidate in the
/// background and its outputs are compared with the stable ones (largest absolute difference) and discarded. A copy is
/// never returned, never recorded as usage, and cannot slow or fail the real request: it starts after the answer is
/// ready, on its own copy of the inputs, with its own deadline, and is dropped when
/// <see cref="InferenceApiOptions.MaxShadowConcurrency"/> copies are already running.
/// </summary>
public sealed partial class ShadowTraffic : IDisposable
{
    private readonly WorkerClient _workers;
    private readonly RolloutOutcomeRecorder _outcomes;
    private readonly IOptions<InferenceApiOptions> _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<ShadowTraffic> _logger;
    private readonly CancellationToken _stopping;
    private readonly SemaphoreSlim _slots;
    private readonly Counter<long> _copies;

    /// <summary>Creates the limiter and instruments.</summary>
    public ShadowTraffic(WorkerClient workers, RolloutOutcomeRecorder outcomes, IOptions<InferenceApiOptions> options, TimeProvider timeProvider,
        IMeterFactory meterFactory, IHostApplicationLifetime lifetime, ILogger<ShadowTraffic> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(meterFactory);
        ArgumentNullException.ThrowIfNull(lifetime);
        _workers = workers;
        _outcomes = outcomes;
        _options = options;
        _timeProvider = timeProvider;
        _logger = logger;
        _stopping = lifetime.ApplicationStopping;
        _slots = new SemaphoreSlim(Math.Max(1, options.Value.MaxShadowConcurrency));
        _copies = meterFactory.Create(InferenceMetrics.MeterName).CreateCounter<long>("platform.inference_api.shadow.copies",
            description: "Shadow copies of rollouts by model, candidate version and outcome (compared, mismatch, failed, dropped)");
    }

    /// <summary>
    /// Starts a shadow copy of <paramref name="request"/> on the rollout's candidate unless the limit is reached; returns at
    /// once. The inputs are copied before returning (the request's buffers go back to a pool after the answer).
    /// </summary>
    /// <param name="rollout">The rollout in shadow mode.</param>
    /// <param name="request">The request as the stable version ran it.</param>
    /// <param name="stableOutputs">The stable version's outputs, compared by name.</param>
    public void Start(Rollout rollout, InferRequest request, IReadOnlyList<InferTensor> stableOutputs)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(stableOutputs);
        if (!_slots.Wait(0))
        {
            Count(rollout, "dropped");
            return;
        }

        InferItem item;
        IReadOnlyList<InferTensor> expected;
        try
        {
            item = CopyToWire(request, _timeProvider.GetUtcNow() + _options.Value.DefaultTimeout);
            expected = [.. stableOutputs.Select(o => o with { Data = o.Data.ToArray() })];
        }
        catch
        {
            _slots.Release();
            throw;
        }

        _ = Task.Run(() => RunAsync(rollout, item, expected), CancellationToken.None);
    }

    /// <summary>
    /// The largest absolute difference between two sets of outputs matched by name; null when an output is missing or differs
    /// in datatype or shape. Numbers are compared as numbers; other datatypes count 0 when the bytes are equal, else 1.
    /// </summary>
    public static double? Difference(IReadOnlyList<InferTensor> expected, IReadOnlyList<Tensor> actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        double largest = 0;
        foreach (var stable in expected)
        {
            var shadow = actual.FirstOrDefault(t => t.Name == stable.Name);
            if (shadow is null || !DataTypes.TryFromWire(shadow.Datatype, out var type) || type != stable.DataType || !shadow.Shape.SequenceEqual(stable.Shape)
                || shadow.Data.Length != stable.Data.Length)
            {
                return null;
            }

            largest = Math.Max(largest, Difference(type, stable.Data.Span, shadow.Data.Span));
        }

        return largest;
    }

    /// <inheritdoc />
    public void Dispose() => _slots.Dispose();

    private async Task RunAsync(Rollout rollout, InferItem item, IReadOnlyList<InferTensor> stableOutputs)
    {
        var started = _timeProvider.GetTimestamp();
        try
        {
            var deadline = DateTimeOffset.FromUnixTimeMilliseconds(item.DeadlineUnixMs);
            var call = await _workers.InferAsync(rollout.Model, rollout.CandidateVersion, item, deadline, _stopping);
            var latency = _timeProvider.GetElapsedTime(started);
            if (call.Result is null)
            {
                _outcomes.RecordShadow(rollout, call.Error?.Status ?? 500, latency, compared: false, drift: null);
                Count(rollout, "failed");
                return;
            }

            var drift = Difference(stableOutputs, call.Result.Outputs);
            _outcomes.RecordShadow(rollout, 200, latency, compared: true, drift);
            Count(rollout, drift is null ? "mismatch" : "compared");
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            // Shutting down: the copy is abandoned uncounted.
        }
        catch (Exception ex)
        {
            // A copy must never take anything down: it counts as a failure of the candidate.
            _outcomes.RecordShadow(rollout, 500, _timeProvider.GetElapsedTime(started), compared: false, drift: null);
            Count(rollout, "failed");
            LogShadowFailed(_logger, rollout.Model, rollout.CandidateVersion, ex.Message);
        }
        finally
        {
            _slots.Release();
        }
    }

    private void Count(Rollout rollout, string outcome) =>
        _copies.Add(1, new KeyValuePair<string, object?>("model", rollout.Model), new KeyValuePair<string, object?>("model_version", rollout.CandidateVersion),
            new KeyValuePair<string, object?>("outcome", outcome));

    private static InferItem CopyToWire(InferRequest request, DateTimeOffset deadline)
    {
        var item = new InferItem { RequestId = request.Id ?? string.Empty, DeadlineUnixMs = deadline.ToUnixTimeMilliseconds() };
        foreach (var input in request.Inputs)
        {
            var tensor = new Tensor { Name = input.Name, Datatype = input.DataType.ToWire(), Data = ByteString.CopyFrom(input.Data.Span) };
            tensor.Shape.AddRange(input.Shape);
            item.Inputs.Add(tensor);
        }

        foreach (var output in request.Outputs)
        {
            item.Outputs.Add(output.Name);
        }

        return item;
    }

    private static double Difference(DataType type, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b) => type switch
    {
        DataType.Fp32 => Largest(MemoryMarshal.Cast<byte, float>(a), MemoryMarshal.Cast<byte, float>(b), static v => v),
        DataType.Fp64 => Largest(MemoryMarshal.Cast<byte, double>(a), MemoryMarshal.Cast<byte, double>(b), static v => v),
        DataType.Fp16 => Largest(MemoryMarshal.Cast<byte, Half>(a), MemoryMarshal.Cast<byte, Half>(b), static v => (double)v),
        DataType.Int32 => Largest(MemoryMarshal.Cast<byte, int>(a), MemoryMarshal.Cast<byte, int>(b), static v => v),
        DataType.Int64 => Largest(MemoryMarshal.Cast<byte, long>(a), MemoryMarshal.Cast<byte, long>(b), static v => v),
        _ => a.SequenceEqual(b) ? 0 : 1,
    };

    private static double Largest<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Func<T, double> value)
    {
        double largest = 0;
        for (var i = 0; i < a.Length; i++)
        {
            var difference = Math.Abs(value(a[i]) - value(b[i]));
            // NaN on one side only is as different as it gets.
            largest = double.IsNaN(difference) ? (double.IsNaN(value(a[i])) && double.IsNaN(value(b[i])) ? largest : double.PositiveInfinity) : Math.Max(largest, difference);
        }

        return largest;
    }

    [LoggerMessage(EventId = 60, Level = LogLevel.Warning, Message = "Shadow copy of {Model} on candidate version {Version} failed: {Reason}")]
    private static partial void LogShadowFailed(ILogger logger, string model, long version, string reason);
}
