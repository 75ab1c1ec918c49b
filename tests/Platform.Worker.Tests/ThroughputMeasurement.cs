using System.Diagnostics;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Platform.Inference.Protocol.Wire;
using Platform.OnnxModels;
using Platform.OnnxRuntime;

namespace Platform.Worker.Tests;

/// <summary>
/// Not a pass/fail test: measures the benchmark model raw in-process and through one worker replica over the gRPC hop, batching
/// off and on, and prints the numbers. Run with <c>-method "*MeasureRawOrtAgainstTheWorker"</c> (it is Explicit).
/// </summary>
public sealed class ThroughputMeasurement(PlatformFixture platform) : IClassFixture<PlatformFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Explicit = true)]
    public async Task MeasureRawOrtAgainstTheWorker()
    {
        var output = TestContext.Current.TestOutputHelper!;
        var model = ModelCatalog.Generate("benchmark");
        var features = BenchmarkModel.InputFeatures;
        var duration = TimeSpan.FromSeconds(3);

        MeasureRaw(model.Bytes, features, duration, "before");

        var name = $"bench-{Guid.NewGuid():N}"[..14];
        var version = await platform.UploadActiveAsync(name, model.Bytes, Ct);
        foreach (var (maxBatch, delayMicros) in new[] { (1, 0), (32, 2000) })
        {
            await platform.PutSettingsAsync(name, new { maxBatchSize = maxBatch, maxQueueDelayMicros = delayMicros, queueCapacity = 4096 }, Ct);
            await platform.WaitUntilReadyEverywhereAsync(name, version, TimeSpan.FromSeconds(120), Ct,
                ready => ready.GetProperty("settings").GetProperty("maxBatchSize").GetInt32() == maxBatch);
            using var channel = platform.CreateWorkerChannel(0);
            var client = new Platform.Inference.Protocol.Wire.ModelWorker.ModelWorkerClient(channel);
            var request = Request(name, version, features);
            foreach (var concurrency in new[] { 1, 8, 32, 64 })
            {
                var latencies = new List<double>();
                long rows = 0, batchSum = 0;
                var clock = Stopwatch.StartNew();
                await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
                {
                    while (clock.Elapsed < duration)
                    {
                        var start = Stopwatch.GetTimestamp();
                        var response = await client.InferAsync(request, cancellationToken: Ct);
                        var parsed = response.Results[0];
                        Assert.Null(parsed.Error);
                        lock (latencies)
                        {
                            latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                            rows++;
                            batchSum += parsed.BatchSize;
                        }
                    }
                }));
                latencies.Sort();
                output.WriteLine(
                    $"worker maxBatch {maxBatch,2} c{concurrency,2}: {rows / clock.Elapsed.TotalSeconds,8:0} inferences/s, p50 {latencies[latencies.Count / 2],6:0.00} ms, " +
                    $"p99 {latencies[(int)(latencies.Count * 0.99)],6:0.00} ms, mean batch {(double)batchSum / rows:0.0}");
            }
        }

        MeasureRaw(model.Bytes, features, duration, "after");
    }

    /// <summary>
    /// In-process ORT on a private pool of one thread per core without spinning (what the worker's global pool does) and
    /// with ONNX Runtime's default spinning. Private pools, because the spinning entries only apply to them.
    /// </summary>
    private static void MeasureRaw(byte[] model, int features, TimeSpan duration, string label)
    {
        var output = TestContext.Current.TestOutputHelper!;
        using var ort = new OrtEnvironment();
        foreach (var spinning in new[] { "0", "1" })
        {
            using var session = ort.CreateSession(model, new InferenceSessionOptions
            {
                IntraOpNumThreads = Environment.ProcessorCount,
                ConfigEntries = new Dictionary<string, string> { ["session.intra_op.allow_spinning"] = spinning },
            });
            foreach (var batch in new[] { 1, 8, 32, 64 })
            {
                var input = new float[batch * features];
                var tensor = new[] { new NamedTensor("input", TensorData.From(input, batch, features)) };
                using (session.Run(tensor, cancellationToken: Ct))
                {
                }
                var clock = Stopwatch.StartNew();
                var runs = 0;
                while (clock.Elapsed < duration)
                {
                    using var _ = session.Run(tensor, cancellationToken: Ct);
                    runs++;
                }
                output.WriteLine($"raw ORT ({label}, spinning {spinning}) batch {batch,2}: {runs * batch / clock.Elapsed.TotalSeconds,8:0} inferences/s, {clock.Elapsed.TotalMilliseconds / runs,7:0.00} ms/run");
            }
        }
    }

    private static InferBatchRequest Request(string model, long version, int features)
    {
        var values = new float[features];
        var random = new Random(1);
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)random.NextDouble();
        }
        var tensor = new Tensor { Name = "input", Datatype = DataType.Fp32, Data = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        tensor.Shape.Add([1, features]);
        var item = new InferItem();
        item.Inputs.Add(tensor);
        return new InferBatchRequest { Model = model, Version = version, Items = { item } };
    }
}
