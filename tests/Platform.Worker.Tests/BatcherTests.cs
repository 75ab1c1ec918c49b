using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.InteropServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Platform.Batching;
using Platform.OnnxModels;
using Platform.OnnxRuntime;

namespace Platform.Worker.Tests;

/// <summary>Shared ONNX Runtime environment and generated models for the batcher tests.</summary>
public sealed class OrtFixture : IDisposable
{
    public OrtFixture()
    {
        Ort = new OrtEnvironment();
        Mlp = MlpClassifier.Create(new MlpClassifierOptions { InputFeatures = 16, HiddenSizes = [32, 32], Classes = 4, Seed = 7 });
        MlpSession = Ort.CreateSession(Mlp.ToModel().Bytes, new InferenceSessionOptions { IntraOpNumThreads = 1 });
        var embedding = ModelCatalog.Generate("embedding", new ModelRequest { Vocabulary = 100, TokenDimension = 8, Dimension = 6 });
        EmbeddingSession = Ort.CreateSession(embedding.Bytes, new InferenceSessionOptions { IntraOpNumThreads = 1 });
        Services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        Telemetry = new BatcherTelemetry(Services.GetRequiredService<IMeterFactory>());
    }

    public OrtEnvironment Ort { get; }

    public MlpClassifier Mlp { get; }

    public InferenceSession MlpSession { get; }

    public InferenceSession EmbeddingSession { get; }

    public ServiceProvider Services { get; }

    public BatcherTelemetry Telemetry { get; }

    public void Dispose()
    {
        Telemetry.Dispose();
        Services.Dispose();
        MlpSession.Dispose();
        EmbeddingSession.Dispose();
        Ort.Dispose();
    }
}

public sealed class BatcherTests(OrtFixture ort) : IClassFixture<OrtFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ABatchClosesAtMaxBatchSizeWithoutWaitingForTheDelay()
    {
        await using var batcher = Create(ort.MlpSession, maxBatch: 4, delay: TimeSpan.FromSeconds(30));
        var started = Stopwatch.StartNew();
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => batcher.InferAsync(MlpWork(1, seed: i), Ct)));
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(10), $"took {started.Elapsed}");
        Assert.All(results, r => Assert.Equal((4, 4), (r.BatchRows, r.BatchRequests)));
    }

    [Fact]
    public async Task ABatchClosesAtMaxQueueDelayWhenItIsNotFull()
    {
        var delay = TimeSpan.FromMilliseconds(300);
        await using var batcher = Create(ort.MlpSession, maxBatch: 64, delay: delay);
        var started = Stopwatch.StartNew();
        var results = await Task.WhenAll(Enumerable.Range(0, 3).Select(i => batcher.InferAsync(MlpWork(2, seed: i), Ct)));
        var elapsed = started.Elapsed;
        Assert.True(elapsed >= delay - TimeSpan.FromMilliseconds(20), $"closed after {elapsed.TotalMilliseconds} ms, before the delay");
        Assert.True(elapsed < TimeSpan.FromSeconds(10), $"took {elapsed}");
        Assert.All(results, r => Assert.Equal((6, 3), (r.BatchRows, r.BatchRequests)));
        Assert.All(results, r => Assert.True(r.QueueTime >= delay - TimeSpan.FromMilliseconds(20), $"queue time {r.QueueTime}"));
    }

    [Fact]
    public void IdleDispatchIsTheDefault() => Assert.True(new BatchingOptions(64, TimeSpan.FromMilliseconds(2), 16).DispatchWhenIdle);

    [Fact]
    public async Task WithIdleDispatchALoneRequestRunsAtOnceInsteadOfWaitingForTheDelay()
    {
        var delay = TimeSpan.FromHours(1);
        await using var batcher = Create(ort.MlpSession, maxBatch: 64, delay: delay, dispatchWhenIdle: true);
        for (var i = 0; i < 3; i++)
        {
            // Without idle dispatch this would wait the hour (see ABatchClosesAtMaxQueueDelayWhenItIsNotFull).
            var result = await batcher.InferAsync(MlpWork(1, seed: i), Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);
            Assert.Equal((1, 1), (result.BatchRows, result.BatchRequests));
            Assert.True(result.QueueTime < delay, $"queue time {result.QueueTime}");
        }
    }

    [Fact]
    public async Task WithIdleDispatchRequestsThatArriveWhileABatchRunsFormTheNextBatchesUpToMaxSize()
    {
        // Holds the first batch at its start (the batch activity starts on the loop thread right before the run) while
        // more requests arrive, which makes "arrived while a batch ran" deterministic without a test seam in the batcher.
        var model = $"idle-{Guid.NewGuid():N}";
        var firstStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var release = new ManualResetEventSlim();
        var held = 0;
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == BatcherTelemetry.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStarted = activity =>
            {
                if (activity.OperationName == $"batch {model}" && Interlocked.Exchange(ref held, 1) == 0)
                {
                    firstStarted.TrySetResult();
                    release.Wait(TimeSpan.FromSeconds(30));
                }
            },
        };
        ActivitySource.AddActivityListener(listener);

        await using var batcher = Create(ort.MlpSession, maxBatch: 4, delay: TimeSpan.FromHours(1), dispatchWhenIdle: true, model: model);
        var first = batcher.InferAsync(MlpWork(1, seed: 1), Ct);
        await firstStarted.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        InferenceWork[] later = [MlpWork(2, seed: 2), MlpWork(1, seed: 3), MlpWork(3, seed: 4), MlpWork(1, seed: 5)];
        var tasks = later.Select(w => batcher.InferAsync(w, Ct)).ToArray();
        Assert.Equal(4, batcher.QueueDepth);
        release.Set();

        var results = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(30), Ct);
        Assert.Equal((1, 1), ((await first).BatchRows, (await first).BatchRequests));
        // 2 + 1 rows, then 3 + 1: the third request would have made the first of these batches 6 rows, over the max of 4.
        Assert.Equal([(3, 2), (3, 2), (4, 2), (4, 2)], results.Select(r => (r.BatchRows, r.BatchRequests)));
        AssertSplitMatchesBatchRun(ort.MlpSession, later[..2], results[..2]);
        AssertSplitMatchesBatchRun(ort.MlpSession, later[2..], results[2..]);
        Assert.Equal(0, batcher.QueueDepth);
    }

    [Fact]
    public async Task OnlyRequestsWithTheSameNonBatchDimensionsShareABatch()
    {
        await using var batcher = Create(ort.EmbeddingSession, maxBatch: 64, delay: TimeSpan.FromMilliseconds(300));
        var works = new[] { TokenWork(1, 5, 1), TokenWork(2, 7, 2), TokenWork(1, 5, 3), TokenWork(3, 7, 4), TokenWork(1, 9, 5) };
        var results = await Task.WhenAll(works.Select(w => batcher.InferAsync(w, Ct)));

        Assert.Equal([(2, 2), (5, 2), (2, 2), (5, 2), (1, 1)], results.Select(r => (r.BatchRows, r.BatchRequests)));
        // Each request's share equals what ONNX Runtime computes for exactly the batch it ran in.
        AssertSplitMatchesBatchRun(ort.EmbeddingSession, [works[0], works[2]], [results[0], results[2]]);
        AssertSplitMatchesBatchRun(ort.EmbeddingSession, [works[1], works[3]], [results[1], results[3]]);
    }

    [Fact]
    public async Task OutputsAreSplitBackExactlyByRows()
    {
        await using var batcher = Create(ort.MlpSession, maxBatch: 64, delay: TimeSpan.FromMilliseconds(300));
        int[] rows = [1, 2, 3, 1, 5];
        var works = rows.Select((r, i) => MlpWork(r, seed: 100 + i)).ToArray();
        var results = await Task.WhenAll(works.Select(w => batcher.InferAsync(w, Ct)));

        Assert.All(results, r => Assert.Equal((12, 5), (r.BatchRows, r.BatchRequests)));
        for (var i = 0; i < rows.Length; i++)
        {
            Assert.Equal([rows[i], 4L], results[i].Outputs.Single().Shape);
        }
        AssertSplitMatchesBatchRun(ort.MlpSession, works, results);

        // And against independent maths (C# reference), so the split is not just consistent with itself.
        for (var i = 0; i < rows.Length; i++)
        {
            var input = MemoryMarshal.Cast<byte, float>(works[i].Inputs[0].Data.Span);
            var expected = ort.Mlp.Predict(input, rows[i]);
            var actual = MemoryMarshal.Cast<byte, float>(results[i].Outputs[0].Data.Span).ToArray();
            Assert.Equal(expected.Length, actual.Length);
            for (var j = 0; j < expected.Length; j++)
            {
                Assert.True(Math.Abs(expected[j] - actual[j]) < 1e-5f, $"request {i} element {j}: {actual[j]} vs reference {expected[j]}");
            }
        }
    }

    [Fact]
    public async Task AFullQueueRejectsWithARetryAfter()
    {
        var batcher = Create(ort.MlpSession, maxBatch: 64, delay: TimeSpan.FromSeconds(30), capacity: 2);
        var first = batcher.InferAsync(MlpWork(1, 1), Ct);
        var second = batcher.InferAsync(MlpWork(1, 2), Ct);
        Assert.Equal(2, batcher.QueueDepth);

        var full = await Assert.ThrowsAsync<QueueFullException>(() => batcher.InferAsync(MlpWork(1, 3), Ct));
        Assert.True(full.RetryAfter > TimeSpan.Zero);
        Assert.Contains("full", full.Message, StringComparison.Ordinal);

        // Stopping drains what was queued instead of failing it.
        await batcher.DisposeAsync();
        Assert.Equal(2, (await first).BatchRequests);
        Assert.Equal(2, (await second).BatchRequests);
        await Assert.ThrowsAsync<BatcherStoppedException>(() => batcher.InferAsync(MlpWork(1, 4), Ct));
    }

    [Fact]
    public async Task ACancelledRequestIsDroppedBeforeItRuns()
    {
        await using var batcher = Create(ort.MlpSession, maxBatch: 64, delay: TimeSpan.FromMilliseconds(500));
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var cancelled = batcher.InferAsync(MlpWork(3, 1), cancel.Token);
        var kept = batcher.InferAsync(MlpWork(2, 2), Ct);
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        var result = await kept;
        Assert.Equal((2, 1), (result.BatchRows, result.BatchRequests));
        Assert.Equal(0, batcher.QueueDepth);
    }

    [Fact]
    public async Task ARequestPastItsDeadlineIsDroppedBeforeItRuns()
    {
        await using var batcher = Create(ort.MlpSession, maxBatch: 64, delay: TimeSpan.FromMilliseconds(400));
        var expired = batcher.InferAsync(MlpWork(1, 1) with { Deadline = DateTimeOffset.UtcNow.AddMilliseconds(100) }, Ct);
        var kept = batcher.InferAsync(MlpWork(1, 2) with { Deadline = DateTimeOffset.UtcNow.AddSeconds(30) }, Ct);

        var error = await Assert.ThrowsAsync<DeadlineExceededException>(() => expired);
        Assert.Contains("not run", error.Message, StringComparison.Ordinal);
        Assert.Equal((1, 1), ((await kept).BatchRows, (await kept).BatchRequests));

        await Assert.ThrowsAsync<DeadlineExceededException>(() =>
            batcher.InferAsync(MlpWork(1, 3) with { Deadline = DateTimeOffset.UtcNow.AddSeconds(-1) }, Ct));
    }

    // The batcher takes requests the protocol validator has checked (OpenInference.Tests.ValidationTests covers those
    // rules); it only puts inputs in model order and refuses what it cannot order.
    [Theory]
    [InlineData("missing", "missing input 'input' of model 'test'")]
    [InlineData("unknown", "input 'nope' is not an input of model 'test' or is given more than once")]
    [InlineData("repeated", "input 'input' is not an input of model 'test' or is given more than once")]
    public async Task InputsItCannotOrderAreRefusedNamingThem(string mistake, string message)
    {
        await using var batcher = Create(ort.MlpSession, maxBatch: 8, delay: TimeSpan.FromMilliseconds(1));
        var good = MlpWork(1, 1).Inputs[0];
        InferenceWork work = mistake switch
        {
            "missing" => new InferenceWork([]),
            "unknown" => new InferenceWork([good, good with { Name = "nope" }]),
            "repeated" => new InferenceWork([good, good]),
            _ => throw new ArgumentOutOfRangeException(nameof(mistake)),
        };
        var error = await Assert.ThrowsAsync<InvalidInferenceRequestException>(() => batcher.InferAsync(work, Ct));
        Assert.Equal(message, error.Message);
    }

    [Fact]
    public async Task StatisticsCountRowsBatchesRequestsAndEachPhase()
    {
        await using var batcher = Create(ort.MlpSession, maxBatch: 4, delay: TimeSpan.FromSeconds(30), capacity: 2);
        // Three 4-row batches of two requests each (the size bound closes them; the 30 s delay never does), then two
        // requests left waiting and a third refused by the full queue.
        await Task.WhenAll(Enumerable.Range(0, 2).Select(i => batcher.InferAsync(MlpWork(2, seed: i), Ct)));
        await Task.WhenAll(batcher.InferAsync(MlpWork(3, seed: 3), Ct), batcher.InferAsync(MlpWork(1, seed: 4), Ct));
        await Task.WhenAll(batcher.InferAsync(MlpWork(3, seed: 5), Ct), batcher.InferAsync(MlpWork(1, seed: 6), Ct));
        var full = batcher.InferAsync(MlpWork(1, seed: 7), Ct);
        var fuller = batcher.InferAsync(MlpWork(1, seed: 8), Ct);
        await Assert.ThrowsAsync<QueueFullException>(() => batcher.InferAsync(MlpWork(1, seed: 9), Ct));

        var totals = batcher.Statistics.Snapshot();
        Assert.Equal(12UL, totals.InferenceCount);
        Assert.Equal(3UL, totals.ExecutionCount);
        Assert.Equal((6UL, 6UL, 6UL, 6UL), (totals.Success.Count, totals.Queue.Count, totals.ComputeInput.Count, totals.ComputeInfer.Count));
        Assert.Equal(6UL, totals.ComputeOutput.Count);
        Assert.Equal(1UL, totals.Fail.Count);
        var batch = Assert.Single(totals.Batches);
        Assert.Equal((4, 3UL), (batch.BatchSize, batch.ComputeInfer.Count));
        // Per request the totals add each request's batch duration; per batch size each batch once.
        Assert.Equal(2 * batch.ComputeInfer.Nanoseconds, totals.ComputeInfer.Nanoseconds);
        Assert.True(totals.Success.Nanoseconds >= totals.ComputeInfer.Nanoseconds / 2);
        Assert.True(totals.LastInferenceUnixMs > 0);
        Assert.Equal(2, batcher.QueueDepth);
        _ = (full, fuller); // still waiting for two more rows or the 30 s delay; disposing the batcher runs them
    }

    [Fact]
    public async Task AGroupQueuesAndRunsAsOneEntryEachRequestGetsItsOwnRowsAndCounts()
    {
        await using var batcher = Create(ort.MlpSession, maxBatch: 64, delay: TimeSpan.FromSeconds(30), capacity: 8, dispatchWhenIdle: true);
        // A worker call's three requests (2, 1 and 3 rows) queue as one entry of three.
        var works = new[] { MlpWork(2, seed: 11), MlpWork(1, seed: 12), MlpWork(3, seed: 13) };
        var outcomes = await batcher.InferGroupAsync(new InferenceWorkGroup([.. works.Select(w => w.Inputs)]), Ct);

        Assert.Equal([(6, 3), (6, 3), (6, 3)], outcomes.Select(o => (o.BatchRows, o.BatchRequests)));
        Assert.Equal([[2L, 4L], [1L, 4L], [3L, 4L]], outcomes.Select(o => o.Outputs[0].Shape));
        AssertSplitMatchesBatchRun(ort.MlpSession, works, outcomes);
        var totals = batcher.Statistics.Snapshot();
        Assert.Equal((6UL, 1UL), (totals.InferenceCount, totals.ExecutionCount));
        Assert.Equal((3UL, 3UL, 3UL), (totals.Success.Count, totals.Queue.Count, totals.ComputeInfer.Count));
        Assert.Equal(3 * Assert.Single(totals.Batches).ComputeInfer.Nanoseconds, totals.ComputeInfer.Nanoseconds);
    }

    [Fact]
    public async Task GroupsAndSingleRequestsShareABatchAndEachRequestGetsItsOwnRows()
    {
        await using var batcher = Create(ort.MlpSession, maxBatch: 64, delay: TimeSpan.FromSeconds(30), capacity: 16, dispatchWhenIdle: false);
        // Two calls' groups (5 and 3 rows) and a lone request of 56 rows fill one batch: without idle dispatch it waits
        // for 64 rows (the 30 s delay never closes it), and every request's rows are copied into it once.
        var first = new[] { MlpWork(2, seed: 21), MlpWork(3, seed: 22) };
        var second = new[] { MlpWork(1, seed: 23), MlpWork(2, seed: 24) };
        var lone = MlpWork(56, seed: 25);
        var firstRun = batcher.InferGroupAsync(new InferenceWorkGroup([.. first.Select(w => w.Inputs)]), Ct);
        var secondRun = batcher.InferGroupAsync(new InferenceWorkGroup([.. second.Select(w => w.Inputs)]), Ct);
        var loneRun = batcher.InferAsync(lone, Ct);

        var results = (await firstRun).Concat(await secondRun).Append(await loneRun).ToArray();
        Assert.All(results, r => Assert.Equal((64, 5), (r.BatchRows, r.BatchRequests)));
        AssertSplitMatchesBatchRun(ort.MlpSession, [.. first, .. second, lone], results);
        Assert.Equal((5UL, 1UL), (batcher.Statistics.Snapshot().Success.Count, batcher.Statistics.Snapshot().ExecutionCount));
    }

    [Fact]
    public async Task AGroupWhoseRequestsDifferInMoreThanTheirRowsIsRefused()
    {
        await using var batcher = Create(ort.EmbeddingSession, maxBatch: 64, delay: TimeSpan.FromSeconds(30), capacity: 8, dispatchWhenIdle: true);
        var error = await Assert.ThrowsAsync<InvalidInferenceRequestException>(() =>
            batcher.InferGroupAsync(new InferenceWorkGroup([TokenWork(1, sequence: 4, seed: 1).Inputs, TokenWork(1, sequence: 5, seed: 2).Inputs]), Ct));
        Assert.Contains("request 1 of a group", error.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => batcher.InferGroupAsync(new InferenceWorkGroup([]), Ct));
        Assert.Equal(0, batcher.QueueDepth);
    }

    [Fact]
    public async Task MetricsAreTaggedWithModelAndVersion()
    {
        var measurements = new List<(string Instrument, double Value, string? Model)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == BatcherTelemetry.MeterName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            string? model = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "model")
                {
                    model = tag.Value as string;
                }
            }
            lock (measurements)
            {
                measurements.Add((instrument.Name, value, model));
            }
        }
        listener.SetMeasurementEventCallback<double>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<int>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<long>((i, v, t, _) => Record(i, v, t));
        listener.Start();

        var model = $"metrics-{Guid.NewGuid():N}";
        await using (var batcher = new ModelBatcher(ort.MlpSession, model, 3, new BatchingOptions(8, TimeSpan.FromMilliseconds(50), 16) { DispatchWhenIdle = false },
                         ort.Telemetry, TimeProvider.System, NullLogger.Instance))
        {
            await Task.WhenAll(batcher.InferAsync(MlpWork(2, 1), Ct), batcher.InferAsync(MlpWork(3, 2), Ct));
        }

        List<(string Instrument, double Value, string? Model)> mine;
        lock (measurements)
        {
            mine = [.. measurements.Where(m => m.Model == model)];
        }
        Assert.Contains(mine, m => m.Instrument == "platform.model.batch.size" && m.Value == 5);
        Assert.Contains(mine, m => m.Instrument == "platform.model.batch.requests" && m.Value == 2);
        Assert.Equal(5, mine.Where(m => m.Instrument == "platform.model.inferences").Sum(m => m.Value));
        Assert.Equal(2, mine.Count(m => m.Instrument == "platform.model.queue.duration"));
        Assert.Single(mine, m => m.Instrument == "platform.model.compute.duration");
        Assert.Equal(0, mine.Where(m => m.Instrument == "platform.model.queue.depth").Sum(m => m.Value));
    }

    [Fact]
    public async Task EachBatchIsAnActivityLinkedToTheRequestsItServed()
    {
        var batches = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == BatcherTelemetry.ActivitySourceName || source.Name == "test.requests",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if (activity.Source.Name == BatcherTelemetry.ActivitySourceName)
                {
                    lock (batches)
                    {
                        batches.Add(activity);
                    }
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        using var requests = new ActivitySource("test.requests");
        var model = $"traced-{Guid.NewGuid():N}";
        var contexts = new List<ActivityContext>();
        await using (var batcher = new ModelBatcher(ort.MlpSession, model, 2, new BatchingOptions(8, TimeSpan.FromMilliseconds(100), 16) { DispatchWhenIdle = false },
                         ort.Telemetry, TimeProvider.System, NullLogger.Instance))
        {
            var tasks = new List<Task<InferenceOutcome>>();
            for (var i = 0; i < 3; i++)
            {
                using var request = requests.StartActivity("request")!;
                contexts.Add(request.Context);
                tasks.Add(batcher.InferAsync(MlpWork(1, i), Ct));
            }
            await Task.WhenAll(tasks);
        }

        Activity batch;
        lock (batches)
        {
            batch = Assert.Single(batches, b => Equals(b.GetTagItem("model"), model));
        }
        Assert.Equal(default, batch.ParentSpanId);
        Assert.Equal(contexts.Select(c => c.SpanId.ToHexString()).Order(), batch.Links.Select(l => l.Context.SpanId.ToHexString()).Order());
        Assert.Equal(3, batch.GetTagItem("batch.requests"));
    }

    // Idle dispatch is off unless a test is about it: the other tests need requests to stay queued until the batch closes
    // at max size or max delay, which idle dispatch would pre-empt whenever the loop happens to run between two enqueues.
    private ModelBatcher Create(InferenceSession session, int maxBatch, TimeSpan delay, int capacity = 1024, bool dispatchWhenIdle = false,
        string model = "test") =>
        new(session, model, 1, new BatchingOptions(maxBatch, delay, capacity) { DispatchWhenIdle = dispatchWhenIdle }, ort.Telemetry,
            TimeProvider.System, NullLogger.Instance);

    private static InferenceWork MlpWork(int rows, int seed)
    {
        var random = new Random(seed);
        var values = new float[rows * 16];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)(random.NextDouble() * 4 - 2);
        }
        return new InferenceWork([new BatchInput("input", TensorElementType.Float, [rows, 16], MemoryMarshal.AsBytes(values.AsSpan()).ToArray())]);
    }

    private static InferenceWork TokenWork(int rows, int sequence, int seed)
    {
        var random = new Random(seed);
        var ids = new long[rows * sequence];
        var mask = new long[rows * sequence];
        for (var i = 0; i < ids.Length; i++)
        {
            ids[i] = random.Next(0, 100);
            mask[i] = i % sequence < sequence - 1 ? 1 : 0;
        }
        return new InferenceWork(
        [
            new BatchInput("input_ids", TensorElementType.Int64, [rows, sequence], MemoryMarshal.AsBytes(ids.AsSpan()).ToArray()),
            new BatchInput("attention_mask", TensorElementType.Int64, [rows, sequence], MemoryMarshal.AsBytes(mask.AsSpan()).ToArray()),
        ]);
    }

    /// <summary>Runs the concatenation of <paramref name="works"/> in-process and checks each result is its rows, bit for bit.</summary>
    private static void AssertSplitMatchesBatchRun(InferenceSession session, IReadOnlyList<InferenceWork> works, IReadOnlyList<InferenceOutcome> results)
    {
        var inputs = new List<NamedTensor>();
        for (var i = 0; i < works[0].Inputs.Count; i++)
        {
            var first = works[0].Inputs[i];
            var bytes = works.SelectMany(w => w.Inputs[i].Data.ToArray()).ToArray();
            var shape = (long[])first.Shape.Clone();
            shape[0] = works.Sum(w => w.Inputs[i].Shape[0]);
            inputs.Add(new NamedTensor(first.Name, TensorData.FromBytes(first.ElementType, bytes, shape)));
        }
        using var batch = session.Run(inputs);
        for (var o = 0; o < batch.Count; o++)
        {
            var expected = batch[o].GetBytes().ToArray();
            var actual = results.SelectMany(r => r.Outputs[o].Data.ToArray()).ToArray();
            Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(actual));
        }
    }
}
