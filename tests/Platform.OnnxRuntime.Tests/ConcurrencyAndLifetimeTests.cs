using System.Diagnostics;
using Platform.OnnxModels;

namespace Platform.OnnxRuntime.Tests;

public sealed class ConcurrencyAndLifetimeTests(OrtFixture fixture)
{
    [Fact]
    public async Task Concurrent_runs_on_one_session_are_all_correct()
    {
        const int threads = 6, runsPerThread = 40;
        var failures = 0;
        var tasks = Enumerable.Range(0, threads).Select(t => Task.Run(() =>
        {
            for (var i = 0; i < runsPerThread; i++)
            {
                var batch = 1 + (t + i) % 5;
                var input = OrtFixture.RandomInputs(batch * 16, (ulong)(t * 1000 + i));
                using var result = fixture.MlpSession.Run([new NamedTensor("input", TensorData.From(input, batch, 16))]);
                var expected = fixture.Mlp.Predict(input, batch);
                var actual = result[0].GetSpan<float>();
                for (var k = 0; k < expected.Length; k++)
                {
                    if (Math.Abs(expected[k] - actual[k]) > 1e-5)
                    {
                        Interlocked.Increment(ref failures);
                        break;
                    }
                }
            }
        }, TestContext.Current.CancellationToken));
        await Task.WhenAll(tasks);
        Assert.Equal(0, failures);
    }

    [Fact]
    public void Pre_cancelled_token_does_not_run()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.Throws<OperationCanceledException>(() =>
            fixture.MlpSession.Run([new NamedTensor("input", TensorData.From(new float[16], 1, 16))], cancellationToken: cts.Token));
    }

    [Fact]
    public void Cancellable_run_that_is_not_cancelled_completes()
    {
        using var cts = new CancellationTokenSource();
        var input = OrtFixture.RandomInputs(16, 5);
        using var result = fixture.MlpSession.Run([new NamedTensor("input", TensorData.From(input, 1, 16))], cancellationToken: cts.Token);
        OrtFixture.AssertClose(fixture.Mlp.Predict(input, 1), result[0].GetSpan<float>(), 1e-5);
    }

    [Fact]
    public void Cancelling_a_long_run_terminates_it()
    {
        var model = BenchmarkModel.Create();
        using var session = fixture.Environment.CreateSession(model.ToModel().Bytes);
        const int features = BenchmarkModel.InputFeatures;
        var input = new float[8192 * features];

        // The timer can fire late on a loaded machine and ORT only polls between operators, so a run that
        // finishes first is retried with a bigger batch rather than failing the test; so is one whose token fired
        // before ONNX Runtime started it (a stalled thread: cancelled without ORT's error inside).
        OperationCanceledException? cancelled = null;
        foreach (var batch in new[] { 2048, 8192, 8192 })
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(20));
            try
            {
                using var _ = session.Run([new NamedTensor("input", TensorData.From(input.AsMemory(0, batch * features), batch, features))],
                    cancellationToken: cts.Token);
            }
            catch (OperationCanceledException ex)
            {
                cancelled = ex;
                if (ex.InnerException is not null)
                {
                    break;
                }
            }
        }
        Assert.NotNull(cancelled);
        // The terminate flag was honoured inside ORT: its own error is kept as the inner exception.
        Assert.IsType<OnnxRuntimeException>(cancelled.InnerException);

        // The session is still usable afterwards.
        using var result = session.Run([new NamedTensor("input", TensorData.From(input.AsMemory(0, 2 * features), 2, features))]);
        Assert.Equal([2L, 16L], result[0].Shape);
    }
}

/// <summary>Runs alone: resident memory is process-wide, so parallel tests would add noise to the measurement.</summary>
[CollectionDefinition(nameof(MemoryCollection), DisableParallelization = true)]
public sealed class MemoryCollection;

[Collection(nameof(MemoryCollection))]
public sealed class MemoryTests(OrtFixture fixture)
{
    [Fact]
    public void Many_runs_and_sessions_do_not_leak_native_memory()
    {
        // 256 rows make each output 5 KiB, so 10k undisposed results would add ~50 MiB and fail the check.
        var input = OrtFixture.RandomInputs(256 * 16, 6);
        var tensor = new NamedTensor("input", TensorData.From(input, 256, 16));
        var strings = ElementTypeTests.BuildInputs("string", TensorData.FromStrings(Enumerable.Range(0, 8).Select(i => $"value {i}").ToArray(), 2, 4));
        void Work(int runs)
        {
            for (var i = 0; i < runs; i++)
            {
                using var result = fixture.MlpSession.Run([tensor]);
                _ = result[0].GetSpan<float>()[0];
            }
            for (var i = 0; i < runs / 10; i++)
            {
                using var result = fixture.AllTypesSession.Run(strings, ["out_string", "out_float16"]);
                _ = result[0].GetStrings();
            }
            for (var i = 0; i < runs / 200; i++)
            {
                using var session = fixture.Environment.CreateSession(fixture.Mlp.ToModel().Bytes);
                using var result = session.Run([tensor]);
            }
        }

        Work(2000); // warm up arenas and thread pools
        var before = Rss();
        Work(10000);
        var growth = Rss() - before;
        Assert.True(growth < 40L * 1024 * 1024, $"Resident memory grew by {growth / 1024 / 1024} MiB over 10k runs.");
    }

    private static long Rss()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        return process.WorkingSet64;
    }
}
