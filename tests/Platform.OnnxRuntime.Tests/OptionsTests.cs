using System.Diagnostics;
using Platform.OnnxModels;

namespace Platform.OnnxRuntime.Tests;

public sealed class OptionsTests(OrtFixture fixture)
{
    public static TheoryData<InferenceSessionOptions> OptionVariants => new(
        new InferenceSessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL },
        new InferenceSessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_BASIC, IntraOpNumThreads = 2 },
        new InferenceSessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_EXTENDED, ExecutionMode = ExecutionMode.ORT_PARALLEL, InterOpNumThreads = 2 },
        new InferenceSessionOptions { ExecutionMode = ExecutionMode.ORT_PARALLEL },
        new InferenceSessionOptions { EnableMemoryPattern = false, EnableCpuMemoryArena = false, PreallocateOutputs = false },
        new InferenceSessionOptions { LogId = "options-test", LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR },
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
        Assert.NotEmpty(error.Message);
    }

    [Fact]
    public void Sessions_use_the_global_pool_unless_they_ask_for_threads_of_their_own()
    {
        Assert.True(fixture.MlpSession.UsesGlobalThreadPool);
        using var own = fixture.Environment.CreateSession(fixture.Mlp.ToModel().Bytes, new InferenceSessionOptions { IntraOpNumThreads = 1 });
        Assert.False(own.UsesGlobalThreadPool);
    }

    [Fact]
    public void Sessions_with_the_same_key_share_one_pre_packed_weights_container_until_the_last_goes()
    {
        var key = $"mlp-{Guid.NewGuid():N}";
        var options = new InferenceSessionOptions { SharedWeightsKey = key };
        var input = OrtFixture.RandomInputs(4 * 16, 12);
        var expected = fixture.Mlp.Predict(input, 4);

        var first = fixture.Environment.CreateSession(fixture.Mlp.ToModel().Bytes, options);
        var initializers = fixture.Environment.SharedInitializerCount(key);
        Assert.True(initializers >= 6, $"{initializers} shared initializers for 3 Gemm layers");
        var second = fixture.Environment.CreateSession(fixture.Mlp.ToModel().Bytes, options);
        Assert.Equal(2, fixture.Environment.SharedWeightsUsers(key));
        Assert.Equal(initializers, fixture.Environment.SharedInitializerCount(key));
        foreach (var session in new[] { first, second })
        {
            using var result = session.Run([new NamedTensor("input", TensorData.From(input, 4, 16))]);
            OrtFixture.AssertClose(expected, result[0].GetSpan<float>(), 1e-5);
        }

        first.Dispose();
        first.Dispose();
        Assert.Equal(1, fixture.Environment.SharedWeightsUsers(key));
        using (var result = second.Run([new NamedTensor("input", TensorData.From(input, 4, 16))]))
        {
            OrtFixture.AssertClose(expected, result[0].GetSpan<float>(), 1e-5);
        }
        second.Dispose();
        Assert.Equal(0, fixture.Environment.SharedWeightsUsers(key));
        Assert.Equal(0, fixture.Environment.SharedInitializerCount(key));
    }

    [Fact]
    public void Versions_with_different_weights_under_one_key_each_keep_their_own()
    {
        // Same names (W0, B0, ...), different values: sharing is by content, so neither may see the other's weights.
        var key = $"model-{Guid.NewGuid():N}";
        var v1 = MlpClassifier.Create(new MlpClassifierOptions { InputFeatures = 16, HiddenSizes = [32, 24], Classes = 5, Seed = 101 });
        var v2 = MlpClassifier.Create(new MlpClassifierOptions { InputFeatures = 16, HiddenSizes = [32, 24], Classes = 5, Seed = 202 });
        using var first = fixture.Environment.CreateSession(v1.ToModel().Bytes, new InferenceSessionOptions { SharedWeightsKey = key });
        var one = fixture.Environment.SharedInitializerCount(key);
        using var second = fixture.Environment.CreateSession(v2.ToModel().Bytes, new InferenceSessionOptions { SharedWeightsKey = key });
        Assert.Equal(2 * one, fixture.Environment.SharedInitializerCount(key));

        var input = OrtFixture.RandomInputs(5 * 16, 9);
        using var r1 = first.Run([new NamedTensor("input", TensorData.From(input, 5, 16))]);
        using var r2 = second.Run([new NamedTensor("input", TensorData.From(input, 5, 16))]);
        OrtFixture.AssertClose(v1.Predict(input, 5), r1[0].GetSpan<float>(), 1e-5);
        OrtFixture.AssertClose(v2.Predict(input, 5), r2[0].GetSpan<float>(), 1e-5);
    }

    [Fact]
    public void Sessions_sharing_weights_read_one_copy_of_each_initializer()
    {
        // ONNX Runtime reads a shared initializer from Platform's buffer instead of a copy of its own, so changing that
        // one buffer changes every sharing session alike, and a session without the key not at all.
        var key = $"mlp-{Guid.NewGuid():N}";
        var model = fixture.Mlp.ToModel().Bytes;
        using var a = fixture.Environment.CreateSession(model, new InferenceSessionOptions { SharedWeightsKey = key });
        using var b = fixture.Environment.CreateSession(model, new InferenceSessionOptions { SharedWeightsKey = key });
        using var alone = fixture.Environment.CreateSession(model);
        var input = new NamedTensor("input", TensorData.From(OrtFixture.RandomInputs(2 * 16, 3), 2, 16));
        float[] Probabilities(InferenceSession session)
        {
            using var result = session.Run([input]);
            return result[0].ToArray<float>();
        }
        var before = Probabilities(a);

        var bias = fixture.Environment.FindSharedInitializer(key, "layer2.bias")!.GetTensorMutableDataAsSpan<float>();
        bias[0] += 5;
        try
        {
            var changed = Probabilities(a);
            Assert.True(changed[0] > before[0] + 0.1f, $"class 0: {before[0]} -> {changed[0]}");
            Assert.Equal(changed, Probabilities(b));
            OrtFixture.AssertClose(before, Probabilities(alone), 1e-6);
        }
        finally
        {
            bias[0] -= 5;
        }
        OrtFixture.AssertClose(before, Probabilities(b), 1e-6);
    }

    [Fact]
    public void A_session_that_fails_to_load_returns_its_shared_weights_lease()
    {
        var key = $"broken-{Guid.NewGuid():N}";
        Assert.Throws<OnnxRuntimeException>(() => fixture.Environment.CreateSession(new byte[] { 1, 2, 3 }, new InferenceSessionOptions { SharedWeightsKey = key }));
        Assert.Equal(0, fixture.Environment.SharedWeightsUsers(key));
    }
}

/// <summary>Thread and memory counts are process-wide, so these run alone.</summary>
[Collection(nameof(MemoryCollection))]
public sealed class SharingTests(OrtFixture fixture)
{
    [Fact]
    public void Sessions_on_the_global_pool_start_no_threads_of_their_own()
    {
        var model = fixture.Mlp.ToModel().Bytes;
        var input = new NamedTensor("input", TensorData.From(new float[64 * 16], 64, 16));
        int Growth(InferenceSessionOptions options)
        {
            var before = ThreadCount();
            var sessions = Enumerable.Range(0, 6).Select(_ => fixture.Environment.CreateSession(model, options)).ToList();
            foreach (var session in sessions)
            {
                using var _ = session.Run([input]);
            }
            var growth = ThreadCount() - before;
            sessions.ForEach(s => s.Dispose());
            return growth;
        }

        var global = Growth(new InferenceSessionOptions());
        var own = Growth(new InferenceSessionOptions { IntraOpNumThreads = 3 });
        // A private pool of 3 runs on the caller plus 2 threads of its own: 6 sessions add 12.
        Assert.True(own >= 10, $"6 sessions with private pools added {own} threads");
        Assert.True(global <= 2, $"6 sessions on the global pool added {global} threads");
    }

    private static int ThreadCount()
    {
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        return process.Threads.Count;
    }

}
