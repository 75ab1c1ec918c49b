namespace Platform.OnnxRuntime.Tests;

public sealed class EnvironmentTests(OrtFixture fixture)
{
    [Fact]
    public void Version_is_the_official_package_1_32_0() => Assert.Equal("1.32.0", fixture.Environment.Version);

    [Fact]
    public void Available_providers_include_cpu_and_the_gpu_build_lists_cuda()
    {
        Assert.Contains("CPUExecutionProvider", fixture.Environment.AvailableProviders);
        // The default build references the CUDA package; -p:PlatformOnnxRuntime=Cpu builds the tests without it.
        Assert.Equal(fixture.Environment.AvailableProviders.Contains("CUDAExecutionProvider"), fixture.Environment.HasCudaProvider);
        Assert.Equal(OrtFixture.BuiltWithCudaPackage, fixture.Environment.HasCudaProvider);
    }

    [Fact]
    public void The_process_environment_has_global_thread_pools_with_the_first_creators_settings()
    {
        Assert.Equal(OrtFixture.EnvironmentOptions.IntraOpNumThreads, fixture.Environment.GlobalThreadPool!.IntraOpNumThreads);
        Assert.Equal(OrtFixture.EnvironmentOptions.AllowSpinning, fixture.Environment.GlobalThreadPool.AllowSpinning);

        // ONNX Runtime has one environment per process: a second instance joins it and reports what is in force.
        using var second = new OrtEnvironment(new OrtEnvironmentOptions { IntraOpNumThreads = 7, AllowSpinning = true });
        Assert.Equal(fixture.Environment.GlobalThreadPool, second.GlobalThreadPool);
    }

    [Fact]
    public void Negative_global_thread_counts_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new OrtEnvironment(new OrtEnvironmentOptions { IntraOpNumThreads = -1 }));
    }

    [Fact]
    public void Sessions_keep_working_after_their_environment_object_is_disposed()
    {
        var environment = new OrtEnvironment();
        using var session = environment.CreateSession(fixture.Mlp.ToModel().Bytes);
        environment.Dispose();
        Assert.Throws<ObjectDisposedException>(() => environment.CreateSession(fixture.Mlp.ToModel().Bytes));
        var input = OrtFixture.RandomInputs(16, 31);
        using var result = session.Run([new NamedTensor("input", TensorData.From(input, 1, 16))]);
        OrtFixture.AssertClose(fixture.Mlp.Predict(input, 1), result[0].GetSpan<float>(), 1e-5);
    }

    [Fact]
    public async Task Async_session_creation_honours_a_cancelled_token()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => fixture.Environment.CreateSessionAsync("/any/model.onnx", cancellationToken: cts.Token));
    }
}
