using Platform.OnnxRuntime.Native;

namespace Platform.OnnxRuntime.Tests;

public sealed class EnvironmentTests(OrtFixture fixture)
{
    [Fact]
    public void Version_is_1_30_0() => Assert.Equal("1.30.0", fixture.Environment.Version);

    [Fact]
    public void Build_info_is_reported()
    {
        // GetBuildInfoString is the last entry of the original OrtApi table (index 254); reading it proves the offset.
        Assert.StartsWith("ORT Build Info:", fixture.Environment.BuildInfo, StringComparison.Ordinal);
    }

    [Fact]
    public void Available_providers_include_cpu()
    {
        Assert.Contains("CPUExecutionProvider", fixture.Environment.AvailableProviders);
    }

    [Fact]
    public void Library_is_loaded_from_the_copy_next_to_the_tests()
    {
        Assert.Equal(Path.Combine(AppContext.BaseDirectory, OrtLibraryLoader.LibraryFileName), fixture.Environment.LibraryPath);
        Assert.True(File.Exists(fixture.Environment.LibraryPath));
    }

    [Fact]
    public void Explicit_library_path_is_used()
    {
        var path = Path.Combine(AppContext.BaseDirectory, OrtLibraryLoader.LibraryFileName);
        using var environment = new OrtEnvironment(new OrtEnvironmentOptions { LibraryPath = path, LogLevel = OrtLoggingLevel.Error });
        Assert.Equal(path, environment.LibraryPath);
        Assert.Equal("1.30.0", environment.Version);
    }

    [Fact]
    public void Missing_library_fails_with_install_hint()
    {
        var error = Assert.Throws<OnnxRuntimeException>(() =>
            new OrtEnvironment(new OrtEnvironmentOptions { LibraryPath = "/nonexistent/libonnxruntime.so.1" }));
        Assert.Equal(OrtErrorCode.NoSuchFile, error.ErrorCode);
        Assert.Contains("eng/install.sh", error.Message, StringComparison.Ordinal);
        Assert.Contains("/nonexistent/libonnxruntime.so.1", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Library_that_is_not_onnx_runtime_fails_clearly()
    {
        var notAnOrtLibrary = Path.Combine(AppContext.BaseDirectory, "not-ort.so");
        File.WriteAllText(notAnOrtLibrary, "not an ELF file");
        var error = Assert.Throws<OnnxRuntimeException>(() => new OrtEnvironment(new OrtEnvironmentOptions { LibraryPath = notAnOrtLibrary }));
        Assert.Contains("could not be loaded", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public unsafe void Status_round_trip_maps_code_and_message()
    {
        var api = fixture.Environment.Api;
        using var message = new NativeUtf8("synthetic failure ü");
        var status = api.CreateStatus((int)OrtErrorCode.InvalidGraph, message.Pointer);
        var error = Assert.Throws<OnnxRuntimeException>(() => api.Check(status));
        Assert.Equal(OrtErrorCode.InvalidGraph, error.ErrorCode);
        Assert.Equal("synthetic failure ü", error.OrtMessage);
        Assert.Contains("InvalidGraph", error.Message, StringComparison.Ordinal);
        api.Check(IntPtr.Zero);
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
}
