using System.Diagnostics.Metrics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Platform.Batching;
using Platform.ModelWorker;
using Platform.OnnxRuntime;

namespace Platform.Worker.Tests;

/// <summary>
/// The worker's execution provider choice (ModelWorker:ExecutionProvider) in-process, on this machine's real ONNX Runtime:
/// without a GPU, auto falls back to CPU with ONNX Runtime's reason and cuda stops start-up naming what did not load.
/// eng/gpu-check.sh sets PLATFORM_TEST_EXECUTION_PROVIDER=cuda on a GPU machine, where CUDA must be live instead.
/// </summary>
public sealed partial class ExecutionProviderTests(OrtFixture ort) : IClassFixture<OrtFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static bool CudaRequested =>
        string.Equals(Environment.GetEnvironmentVariable("PLATFORM_TEST_EXECUTION_PROVIDER"), "cuda", StringComparison.OrdinalIgnoreCase);

    [Fact]
    public async Task CpuIsLiveWithoutAReasonWhenAskedFor()
    {
        var status = Status(ExecutionProviderPreference.Cpu);
        Assert.Equal(InferenceSession.CpuProvider, status.Provider);
        Assert.Null(status.FallbackReason);
        var health = await Health(status);
        Assert.Equal(HealthStatus.Healthy, health.Status);
        Assert.Equal($"ONNX Runtime {ort.Ort.Version} on CPU", health.Description);
        Assert.Equal("cpu", health.Data["requestedProvider"]);
    }

    [Fact]
    public async Task AutoFallsBackToCpuAndHealthSaysWhy()
    {
        Assert.SkipWhen(CudaRequested, "CUDA is expected to be live in this run.");
        var status = Status(ExecutionProviderPreference.Auto);
        Assert.Equal(InferenceSession.CpuProvider, status.Provider);
        Assert.Matches(MissingLibrary(), status.FallbackReason);

        var health = await Health(status);
        Assert.Equal(HealthStatus.Healthy, health.Status);
        Assert.Equal($"ONNX Runtime {ort.Ort.Version} on CPU (CUDA not used: {status.FallbackReason})", health.Description);
        Assert.Equal(status.FallbackReason, health.Data["fallbackReason"]);
        Assert.Equal("CPU", health.Data["executionProvider"]);
        Assert.Equal("auto", health.Data["requestedProvider"]);
    }

    [Fact]
    public void ResourceAttributesNameTheLiveProviderAndTheReason()
    {
        var status = Status(ExecutionProviderPreference.Auto);
        var attributes = new ExecutionProviderResourceDetector(status).Detect().Attributes.ToDictionary(a => a.Key, a => a.Value);
        Assert.Equal(status.Provider, attributes["onnxruntime.execution_provider"]);
        Assert.Equal("auto", attributes["onnxruntime.execution_provider.requested"]);
        Assert.Equal(ort.Ort.Version, attributes["onnxruntime.version"]);
        if (status.FallbackReason is null)
        {
            Assert.False(attributes.ContainsKey("onnxruntime.execution_provider.fallback_reason"));
        }
        else
        {
            Assert.Equal(status.FallbackReason, attributes["onnxruntime.execution_provider.fallback_reason"]);
        }
    }

    [Fact]
    public async Task CudaWithoutCudaStopsStartUpNamingWhatCouldNotLoad()
    {
        Assert.SkipWhen(CudaRequested, "CUDA is expected to be live in this run.");
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["ModelWorker:ExecutionProvider"] = "cuda" });
        builder.Services.AddOptions<WorkerOptions>().BindConfiguration(WorkerOptions.SectionName);
        builder.AddPlatformOnnxRuntime();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync(Ct));
        Assert.StartsWith("ModelWorker:ExecutionProvider is 'cuda' but The CUDA execution provider could not be used: ", error.Message, StringComparison.Ordinal);
        Assert.Matches(MissingLibrary(), error.Message);

        // Health, should anything ask before the process exits, says the same.
        var health = await Health(host.Services.GetRequiredService<ExecutionProviderStatus>());
        Assert.Equal(HealthStatus.Unhealthy, health.Status);
        Assert.Equal("unavailable", health.Data["executionProvider"]);
    }

    [Theory]
    [InlineData("ModelWorker:ExecutionProvider", "5", "ModelWorker:ExecutionProvider must be auto, cuda or cpu")]
    [InlineData("ModelWorker:Cuda:DeviceId", "-1", "ModelWorker:Cuda:DeviceId must be 0 or more")]
    [InlineData("ModelWorker:Cuda:GpuMemoryLimitBytes", "0", "ModelWorker:Cuda:GpuMemoryLimitBytes must be positive when set")]
    public async Task WrongSettingsStopStartUpNamingTheSetting(string key, string value, string message)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { [key] = value });
        builder.Services.AddOptions<WorkerOptions>().BindConfiguration(WorkerOptions.SectionName);
        builder.AddPlatformOnnxRuntime();
        using var host = builder.Build();
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(Ct));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CudaIsLiveOnAGpuMachine()
    {
        Assert.SkipUnless(CudaRequested, "Needs an NVIDIA GPU: run with PLATFORM_TEST_EXECUTION_PROVIDER=cuda (eng/gpu-check.sh).");
        foreach (var preference in new[] { ExecutionProviderPreference.Cuda, ExecutionProviderPreference.Auto })
        {
            var status = Status(preference);
            Assert.Equal(InferenceSession.CudaProvider, status.Provider);
            Assert.Null(status.FallbackReason);
            Assert.Equal($"ONNX Runtime {ort.Ort.Version} on CUDA", (await Health(status)).Description);
        }
    }

    [Fact]
    public async Task ModelMetricsCarryTheSessionsExecutionProvider()
    {
        var providers = new List<string?>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == BatcherTelemetry.MeterName && instrument.Name == "platform.model.inferences")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "execution.provider")
                {
                    lock (providers)
                    {
                        providers.Add(tag.Value as string);
                    }
                }
            }
        });
        listener.Start();

        await using (var batcher = new ModelBatcher(ort.MlpSession, "metrics-provider", 1, new BatchingOptions(8, TimeSpan.Zero, 64),
                         ort.Telemetry, TimeProvider.System, NullLogger.Instance))
        {
            await batcher.InferAsync(MlpWork(2, 1), Ct);
        }
        lock (providers)
        {
            Assert.Contains(ort.MlpSession.ExecutionProvider, providers);
        }
    }

    [Fact]
    public async Task RequestsOfOneBatchGetSlicesOfItsOutputBufferNotCopies()
    {
        Assert.True(ort.MlpSession.PreallocatesOutput("probabilities"));
        await using var batcher = new ModelBatcher(ort.MlpSession, "slices", 1,
            new BatchingOptions(8, TimeSpan.FromSeconds(30), 64) { DispatchWhenIdle = false }, ort.Telemetry, TimeProvider.System, NullLogger.Instance);
        var works = new[] { MlpWork(3, 1), MlpWork(5, 2) };
        var outcomes = await Task.WhenAll(works.Select(w => batcher.InferAsync(w, Ct)));
        Assert.All(outcomes, o => Assert.Equal((8, 2), (o.BatchRows, o.BatchRequests)));

        var first = Assert.Single(outcomes[0].Outputs).Data;
        var second = Assert.Single(outcomes[1].Outputs).Data;
        Assert.True(MemoryMarshal.TryGetArray(first, out var a));
        Assert.True(MemoryMarshal.TryGetArray(second, out var b));
        Assert.Same(a.Array, b.Array);
        Assert.Equal((0, 3 * 4 * sizeof(float)), (a.Offset, a.Count));
        Assert.Equal((3 * 4 * sizeof(float), 5 * 4 * sizeof(float)), (b.Offset, b.Count));

        // And they hold each request's own answer.
        for (var i = 0; i < works.Length; i++)
        {
            var input = MemoryMarshal.Cast<byte, float>(works[i].Inputs[0].Data.Span).ToArray();
            var expected = ort.Mlp.Predict(input, (int)works[i].Inputs[0].Shape[0]);
            var actual = MemoryMarshal.Cast<byte, float>(outcomes[i].Outputs[0].Data.Span);
            for (var k = 0; k < expected.Length; k++)
            {
                Assert.True(Math.Abs(expected[k] - actual[k]) < 1e-5, $"request {i} element {k}: {expected[k]} vs {actual[k]}");
            }
        }
    }

    private ExecutionProviderStatus Status(ExecutionProviderPreference preference) =>
        new(ort.Ort, Options.Create(new WorkerOptions { ExecutionProvider = preference }));

    private static Task<HealthCheckResult> Health(ExecutionProviderStatus status) =>
        new OnnxRuntimeHealthCheck(status).CheckHealthAsync(new HealthCheckContext
        {
            Registration = new HealthCheckRegistration("onnxruntime", _ => null!, HealthStatus.Unhealthy, null),
        }, Ct);

    private static InferenceWork MlpWork(int rows, int seed)
    {
        var random = new Platform.OnnxModels.DeterministicRandom((ulong)seed);
        var values = Enumerable.Range(0, rows * 16).Select(_ => random.NextSymmetric(1f)).ToArray();
        return new InferenceWork([new BatchInput("input", TensorElementType.Float, [rows, 16], MemoryMarshal.AsBytes(values.AsSpan()).ToArray())]);
    }

    /// <summary>ONNX Runtime's words for a shared library that is not installed, e.g. "libcublasLt.so.13: cannot open shared object file".</summary>
    [GeneratedRegex(@"lib[\w.+-]+\.so(\.\d+)*: cannot open shared object file")]
    private static partial Regex MissingLibrary();
}
