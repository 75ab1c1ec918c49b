using System.Text.Json;
using System.Text.RegularExpressions;

namespace Platform.OnnxRuntime.Tests;

/// <summary>
/// cpu / auto / cuda on this machine. Without CUDA (no GPU or no CUDA 13 libraries) auto falls back with ONNX Runtime's
/// reason and cuda fails; with <see cref="OrtFixture.ExecutionProviderVariable"/> = cuda the CUDA tests must prove CUDA ran.
/// </summary>
public sealed partial class ProviderSelectionTests(OrtFixture fixture)
{
    private const string NoCudaHere = "This run expects CUDA to work (PLATFORM_TEST_EXECUTION_PROVIDER=cuda).";
    private const string CudaNotRequested = "Needs an NVIDIA GPU: run with PLATFORM_TEST_EXECUTION_PROVIDER=cuda (eng/gpu-check.sh).";

    [Fact]
    public void Cpu_preference_runs_on_the_cpu_without_a_fallback_reason()
    {
        Assert.Equal(InferenceSession.CpuProvider, fixture.MlpSession.ExecutionProvider);
        Assert.Null(fixture.MlpSession.ExecutionProviderFallbackReason);
        Assert.All(fixture.MlpSession.InputDevices(), device => Assert.Equal("Cpu", device));
    }

    [Fact]
    public void Auto_without_cuda_falls_back_to_the_cpu_with_onnx_runtimes_reason()
    {
        Assert.SkipWhen(OrtFixture.CudaRequested, NoCudaHere);
        using var session = fixture.Environment.CreateSession(fixture.Mlp.ToModel().Bytes,
            new InferenceSessionOptions { ExecutionProvider = ExecutionProviderPreference.Auto });

        Assert.Equal(InferenceSession.CpuProvider, session.ExecutionProvider);
        AssertNamesWhatIsMissing(session.ExecutionProviderFallbackReason);
        var input = OrtFixture.RandomInputs(3 * 16, 77);
        using var result = session.Run([new NamedTensor("input", TensorData.From(input, 3, 16))]);
        OrtFixture.AssertClose(fixture.Mlp.Predict(input, 3), result[0].GetSpan<float>(), 1e-5);
    }

    [Fact]
    public void Cuda_preference_without_cuda_fails_naming_what_could_not_load()
    {
        Assert.SkipWhen(OrtFixture.CudaRequested, NoCudaHere);
        var error = Assert.Throws<ExecutionProviderUnavailableException>(() => fixture.Environment.CreateSession(
            fixture.Mlp.ToModel().Bytes, new InferenceSessionOptions { ExecutionProvider = ExecutionProviderPreference.Cuda }));

        Assert.Equal(InferenceSession.CudaProvider, error.Provider);
        AssertNamesWhatIsMissing(error.Reason);
        Assert.StartsWith("The CUDA execution provider could not be used: ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Cuda_options_become_onnx_runtime_provider_options()
    {
        var options = new CudaOptions
        {
            DeviceId = 1,
            GpuMemoryLimitBytes = 2L << 30,
            ArenaExtendStrategy = CudaArenaExtendStrategy.SameAsRequested,
            CudnnConvAlgorithmSearch = CudnnConvAlgorithmSearch.Heuristic,
            EnableCudaGraph = true,
        }.ToProviderOptions();
        Assert.Equal("1", options["device_id"]);
        Assert.Equal("2147483648", options["gpu_mem_limit"]);
        Assert.Equal("kSameAsRequested", options["arena_extend_strategy"]);
        Assert.Equal("HEURISTIC", options["cudnn_conv_algo_search"]);
        Assert.Equal("1", options["enable_cuda_graph"]);

        var defaults = new CudaOptions().ToProviderOptions();
        Assert.False(defaults.ContainsKey("gpu_mem_limit"));
        Assert.Equal("kNextPowerOfTwo", defaults["arena_extend_strategy"]);
        Assert.Equal("EXHAUSTIVE", defaults["cudnn_conv_algo_search"]);
        Assert.Equal("0", defaults["enable_cuda_graph"]);

        Assert.Throws<ArgumentOutOfRangeException>(() => new CudaOptions { DeviceId = -1 }.ToProviderOptions());
        Assert.Throws<ArgumentOutOfRangeException>(() => new CudaOptions { GpuMemoryLimitBytes = 0 }.ToProviderOptions());
    }

    [Fact]
    public void Cuda_session_runs_on_the_gpu_and_matches_the_cpu()
    {
        Assert.SkipUnless(OrtFixture.CudaRequested, CudaNotRequested);
        var mlp = MlpClassifierForGpu();
        var profileDirectory = Directory.CreateTempSubdirectory("platform-ort-profile-");
        try
        {
            using var cuda = fixture.Environment.CreateSession(mlp.ToModel().Bytes, new InferenceSessionOptions
            {
                ExecutionProvider = ExecutionProviderPreference.Cuda,
                Cuda = new CudaOptions { GpuMemoryLimitBytes = 1L << 30, CudnnConvAlgorithmSearch = CudnnConvAlgorithmSearch.Heuristic },
                ProfileOutputPathPrefix = Path.Combine(profileDirectory.FullName, "cuda"),
            });
            Assert.Equal(InferenceSession.CudaProvider, cuda.ExecutionProvider);
            Assert.Null(cuda.ExecutionProviderFallbackReason);
            Assert.Contains("Cuda", cuda.InputDevices());

            const int rows = 64;
            var input = OrtFixture.RandomInputs(rows * 64, 4242);
            using var onCuda = cuda.Run([new NamedTensor("input", TensorData.From(input, rows, 64))]);
            using var cpu = fixture.Environment.CreateSession(mlp.ToModel().Bytes);
            using var onCpu = cpu.Run([new NamedTensor("input", TensorData.From(input, rows, 64))]);
            OrtFixture.AssertClose(onCpu[0].GetSpan<float>(), onCuda[0].GetSpan<float>(), 1e-4);
            OrtFixture.AssertClose(mlp.Predict(input, rows), onCuda[0].GetSpan<float>(), 1e-4);

            // ONNX Runtime's own trace of the run: the Gemm kernels ran on the CUDA provider.
            var providers = ProfiledNodeProviders(cuda.EndProfiling());
            Assert.Contains(("Gemm", "CUDAExecutionProvider"), providers);
        }
        finally
        {
            profileDirectory.Delete(recursive: true);
        }
    }

    [Fact]
    public void Auto_on_a_gpu_machine_picks_cuda()
    {
        Assert.SkipUnless(OrtFixture.CudaRequested, CudaNotRequested);
        using var session = fixture.Environment.CreateSession(fixture.Mlp.ToModel().Bytes,
            new InferenceSessionOptions { ExecutionProvider = ExecutionProviderPreference.Auto });
        Assert.Equal(InferenceSession.CudaProvider, session.ExecutionProvider);
        Assert.Null(session.ExecutionProviderFallbackReason);
    }

    private static Platform.OnnxModels.MlpClassifier MlpClassifierForGpu() =>
        Platform.OnnxModels.MlpClassifier.Create(new Platform.OnnxModels.MlpClassifierOptions
        {
            InputFeatures = 64, HiddenSizes = [256, 128], Classes = 10, Seed = 17,
        });

    /// <summary>(operator, provider) of every node event in an ONNX Runtime profile.</summary>
    private static HashSet<(string Op, string Provider)> ProfiledNodeProviders(string profilePath)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(profilePath));
        var result = new HashSet<(string, string)>();
        foreach (var item in document.RootElement.EnumerateArray())
        {
            if (item.TryGetProperty("cat", out var category) && category.GetString() == "Node"
                && item.TryGetProperty("args", out var args)
                && args.TryGetProperty("op_name", out var op) && args.TryGetProperty("provider", out var provider))
            {
                result.Add((op.GetString()!, provider.GetString()!));
            }
        }
        return result;
    }

    /// <summary>
    /// The reason must be ONNX Runtime's own account: with the CUDA package on a machine without the CUDA 13 libraries
    /// (this one) the shared library that failed to load, e.g. libcublasLt.so.13; with the CPU-only package, that the
    /// build has no CUDA provider.
    /// </summary>
    private static void AssertNamesWhatIsMissing(string? reason)
    {
        Assert.NotNull(reason);
        if (!OrtFixture.BuiltWithCudaPackage)
        {
            Assert.Contains("has no CUDAExecutionProvider", reason, StringComparison.Ordinal);
            return;
        }
        Assert.Contains("libonnxruntime_providers_cuda.so", reason, StringComparison.Ordinal);
        Assert.Matches(MissingLibrary(), reason);
        Assert.DoesNotContain("[ErrorCode:", reason, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"lib[\w.+-]+\.so(\.\d+)*: cannot open shared object file")]
    private static partial Regex MissingLibrary();
}
