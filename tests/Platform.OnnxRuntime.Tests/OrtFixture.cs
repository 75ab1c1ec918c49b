using Platform.OnnxModels;

[assembly: AssemblyFixture(typeof(Platform.OnnxRuntime.Tests.OrtFixture))]

namespace Platform.OnnxRuntime.Tests;

/// <summary>One ONNX Runtime environment and the commonly used sessions, shared by every test in the assembly.</summary>
public sealed class OrtFixture : IDisposable
{
    private readonly Lazy<InferenceSession> _allTypes;
    private readonly Lazy<InferenceSession> _multiIo;

    public OrtFixture()
    {
        Environment = new OrtEnvironment();
        Mlp = MlpClassifier.Create(new MlpClassifierOptions { InputFeatures = 16, HiddenSizes = [32, 24], Classes = 5, Seed = 7 });
        MlpSession = Environment.CreateSession(Mlp.ToModel().Bytes, new InferenceSessionOptions { IntraOpNumThreads = 1 });
        _allTypes = new(() => Environment.CreateSession(AllTypesModel.Create().Bytes));
        _multiIo = new(() => Environment.CreateSession(MultiIoModel.Create().Bytes));
    }

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
