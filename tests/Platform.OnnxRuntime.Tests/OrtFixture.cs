using Platform.OnnxModels;

[assembly: AssemblyFixture(typeof(Platform.OnnxRuntime.Tests.OrtFixture))]

namespace Platform.OnnxRuntime.Tests;

/// <summary>One ONNX Runtime environment and the commonly used sessions, shared by every test in the assembly.</summary>
public sealed class OrtFixture : IDisposable
{
    /// <summary>
    /// Set to <c>cuda</c> (eng/gpu-check.sh does) to run the CUDA tests, which then must find CUDA working; unset, they
    /// are skipped and the provider-selection tests expect a machine without CUDA.
    /// </summary>
    public const string ExecutionProviderVariable = "PLATFORM_TEST_EXECUTION_PROVIDER";

    /// <summary>The settings this test process creates ONNX Runtime's environment with.</summary>
    public static readonly OrtEnvironmentOptions EnvironmentOptions = new() { IntraOpNumThreads = 2, AllowSpinning = false };

    private readonly Lazy<InferenceSession> _allTypes;
    private readonly Lazy<InferenceSession> _multiIo;

    public OrtFixture()
    {
        Environment = new OrtEnvironment(EnvironmentOptions);
        Mlp = MlpClassifier.Create(new MlpClassifierOptions { InputFeatures = 16, HiddenSizes = [32, 24], Classes = 5, Seed = 7 });
        MlpSession = Environment.CreateSession(Mlp.ToModel().Bytes);
        _allTypes = new(() => Environment.CreateSession(AllTypesModel.Create().Bytes));
        _multiIo = new(() => Environment.CreateSession(MultiIoModel.Create().Bytes));
    }

    /// <summary>Whether these tests were built against the CUDA package (the default) rather than the CPU-only one.</summary>
    public static bool BuiltWithCudaPackage =>
        File.Exists(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libonnxruntime_providers_cuda.so"));

    /// <summary>Whether the run was asked to prove CUDA (<see cref="ExecutionProviderVariable"/> = cuda).</summary>
    public static bool CudaRequested =>
        string.Equals(System.Environment.GetEnvironmentVariable(ExecutionProviderVariable), "cuda", StringComparison.OrdinalIgnoreCase);

    public OrtEnvironment Environment { get; }

    public MlpClassifier Mlp { get; }

    public InferenceSession MlpSession { get; }

    public InferenceSession AllTypesSession => _allTypes.Value;

    public InferenceSession MultiIoSession => _multiIo.Value;

    public void Dispose()
    {
        MlpSession.Dispose();
        if (_allTypes.IsValueCreated)
        {
            _allTypes.Value.Dispose();
        }
        if (_multiIo.IsValueCreated)
        {
            _multiIo.Value.Dispose();
        }
        Environment.Dispose();
    }

    public static float[] RandomInputs(int count, ulong seed)
    {
        var random = new DeterministicRandom(seed);
        var values = new float[count];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = random.NextSymmetric(2f);
        }
        return values;
    }

    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            var difference = Math.Abs(expected[i] - actual[i]);
            Assert.True(difference <= tolerance, $"Element {i}: expected {expected[i]}, got {actual[i]} (|diff| {difference} > {tolerance}).");
        }
    }
}
