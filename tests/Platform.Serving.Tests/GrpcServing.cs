using System.Diagnostics;
using System.Text.Json;
using Grpc.Core;
using Grpc.Net.Client;
using Platform.Inference.OpenInference.Grpc;

namespace Platform.Serving.Tests;

/// <summary>gRPC access to InferenceApi's <c>grpc</c> endpoint for the serving tests, and the Node client beside them.</summary>
internal static class GrpcServing
{
    /// <summary>A channel to InferenceApi's gRPC endpoint.</summary>
    public static GrpcChannel Channel(ServingFixture fixture) => GrpcChannel.ForAddress(fixture.App.GetEndpoint("inference-api", "grpc"));

    /// <summary>The fixture tenant's key (what its REST client sends).</summary>
    public static string Key(ServingFixture fixture) => fixture.Client.Inference.DefaultRequestHeaders.Authorization!.Parameter!;

    /// <summary>Call options carrying <paramref name="key"/> as <c>authorization: Bearer</c>.</summary>
    public static CallOptions With(string? key, CancellationToken ct) =>
        new(headers: key is null ? [] : new Metadata { { "authorization", $"Bearer {key}" } }, deadline: DateTime.UtcNow.AddSeconds(60), cancellationToken: ct);

    /// <summary>The repository root (where Platform.sln is).</summary>
    public static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Platform.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"no Platform.sln above {AppContext.BaseDirectory}");
    }

    /// <summary>Runs grpc-node-client/infer.js with <paramref name="job"/> on stdin; returns its JSON answer.</summary>
    public static async Task<JsonElement> RunNodeClientAsync(object job, CancellationToken ct)
    {
        var directory = Path.Combine(RepositoryRoot(), "tests", "Platform.Serving.Tests", "grpc-node-client");
        Assert.True(File.Exists(Path.Combine(directory, "node_modules", ".package-lock.json")),
            $"the Node gRPC client is not installed in {directory}: run eng/install.sh");
        var start = new ProcessStartInfo("node", [Path.Combine(directory, "infer.js")])
        {
            WorkingDirectory = directory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        await process.StandardInput.WriteAsync(JsonSerializer.Serialize(job));
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(90));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"node infer.js exited {process.ExitCode}: {await stderr}");
        return JsonDocument.Parse(await stdout).RootElement.Clone();
    }

    /// <summary>The status of a failed call.</summary>
    public static async Task<RpcException> FailsAsync<T>(AsyncUnaryCall<T> call)
    {
        using (call)
        {
            return await Assert.ThrowsAsync<RpcException>(async () => await call);
        }
    }

    /// <summary>A ModelInfer client.</summary>
    public static GRPCInferenceService.GRPCInferenceServiceClient Client(GrpcChannel channel) => new(channel);
}
