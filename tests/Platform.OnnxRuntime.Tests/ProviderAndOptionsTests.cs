namespace Platform.OnnxRuntime.Tests;

public sealed class ProviderAndOptionsTests(OrtFixture fixture)
{
    [Fact]
    public void Cpu_session_has_no_fallback_reason()
    {
        Assert.Equal(InferenceSession.CpuProvider, fixture.MlpSession.ExecutionProvider);
        Assert.Null(fixture.MlpSession.ExecutionProviderFallbackReason);
    }

    [Theory]
    [InlineData(ExecutionProviderPreference.Cuda)]
    [InlineData(ExecutionProviderPreference.Auto)]
    public void Cuda_requested_without_a_gpu_falls_back_to_cpu_with_a_reason(ExecutionProviderPreference preference)
    {
        Assert.SkipWhen(Path.Exists("/dev/nvidia0") && File.Exists(Path.Combine(AppContext.BaseDirectory, "libonnxruntime_providers_cuda.so")),
            "This machine can run CUDA.");
        using var session = fixture.Environment.CreateSession(fixture.Mlp.ToModel().Bytes,
            new InferenceSessionOptions { ExecutionProvider = preference });
        Assert.Equal(InferenceSession.CpuProvider, session.ExecutionProvider);
        Assert.NotNull(session.ExecutionProviderFallbackReason);
        Assert.Contains("CUDA", session.ExecutionProviderFallbackReason, StringComparison.Ordinal);
        var reason = InferenceSession.CudaUnavailableReason(fixture.Environment);
        Assert.NotNull(reason);
        Assert.Equal(reason, session.ExecutionProviderFallbackReason);
        Assert.True(reason.Contains("libonnxruntime_providers_cuda.so", StringComparison.Ordinal) || reason.Contains("no GPU", StringComparison.Ordinal), reason);
        using var result = session.Run([new NamedTensor("input", TensorData.From(new float[16], 1, 16))]);
        Assert.Equal([1L, 5L], result[0].Shape);
    }

    [Fact]
    public void Cuda_append_that_onnx_runtime_rejects_falls_back_with_its_message()
    {
        // Skips the GPU/library probe so CreateCUDAProviderOptions, UpdateCUDAProviderOptions and
        // SessionOptionsAppendExecutionProvider_CUDA_V2 really run; without the provider library ORT refuses.
        Assert.SkipWhen(Path.Exists("/dev/nvidia0"), "A GPU is visible; the append may succeed here.");
        using var session = fixture.Environment.CreateSession(fixture.Mlp.ToModel().Bytes,
            new InferenceSessionOptions { ExecutionProvider = ExecutionProviderPreference.Cuda, SkipCudaDeviceProbe = true });
        Assert.Equal(InferenceSession.CpuProvider, session.ExecutionProvider);
        Assert.StartsWith("CUDA execution provider could not be used: ", session.ExecutionProviderFallbackReason, StringComparison.Ordinal);
        Assert.True(session.ExecutionProviderFallbackReason!.Length > "CUDA execution provider could not be used: ".Length);
    }

    public static TheoryData<InferenceSessionOptions> OptionVariants => new(
        new InferenceSessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.DisableAll },
        new InferenceSessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.Basic, IntraOpNumThreads = 2 },
        new InferenceSessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.Extended, ExecutionMode = ExecutionMode.Parallel, InterOpNumThreads = 2 },
        new InferenceSessionOptions { EnableMemoryPattern = false, EnableCpuMemoryArena = false },
        new InferenceSessionOptions { LogId = "options-test", LogSeverityLevel = OrtLoggingLevel.Error },
        new InferenceSessionOptions
        {
            ConfigEntries = new Dictionary<string, string> { ["session.intra_op.allow_spinning"] = "0" },
            IntraOpNumThreads = 1,
        });

    [Theory]
    [MemberData(nameof(OptionVariants))]
    public void Every_option_combination_creates_a_working_session(InferenceSessionOptions options)
    {
        using var session = fixture.Environment.CreateSession(fixture.Mlp.ToModel().Bytes, options);
        var input = OrtFixture.RandomInputs(3 * 16, 8);
        using var result = session.Run([new NamedTensor("input", TensorData.From(input, 3, 16))]);
        OrtFixture.AssertClose(fixture.Mlp.Predict(input, 3), result[0].GetSpan<float>(), 1e-5);
    }

    [Fact]
    public void Negative_thread_counts_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            fixture.Environment.CreateSession(fixture.Mlp.ToModel().Bytes, new InferenceSessionOptions { IntraOpNumThreads = -1 }));
    }

    [Fact]
    public void Config_entries_reach_onnx_runtime()
    {
        // Telling ORT the bytes are in its own .ort format makes it reject an ONNX protobuf: proof the entry was applied.
        var error = Assert.Throws<OnnxRuntimeException>(() => fixture.Environment.CreateSession(fixture.Mlp.ToModel().Bytes,
            new InferenceSessionOptions { ConfigEntries = new Dictionary<string, string> { ["session.load_model_format"] = "ORT" } }));
        Assert.NotEmpty(error.OrtMessage);
    }
}
