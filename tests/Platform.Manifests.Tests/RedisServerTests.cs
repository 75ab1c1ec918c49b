using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Platform.TestSupport;

namespace Platform.Manifests.Tests;

/// <summary>
/// The Redis pod's command as an overlay renders it, run on Debian's redis-server (the release the image pins) the way
/// the pod would: its environment from the downward API, Kubernetes' <c>$$</c> unescaped.
/// </summary>
public sealed class RedisServerTests(PublishFixture fixture)
{
    [Theory]
    [InlineData("dev")]
    [InlineData("prod")]
    public async Task The_rendered_Redis_command_writes_the_AOF_and_bounds_memory_below_the_pod_limit(string overlay)
    {
        var ct = TestContext.Current.CancellationToken;
        var redis = fixture.Render(overlay).OfKind("StatefulSet").Single(s => (string?)s["metadata"]!["name"] == "redis");
        var container = redis["spec"]!["template"]!["spec"]!["containers"]!.AsArray().Single(c => (string?)c!["name"] == "redis")!;
        var limitMib = Mebibytes((string)container["resources"]!["limits"]!["memory"]!);
        var field = container["env"]!.AsArray().Single(e => (string?)e!["name"] == "REDIS_MEMORY_LIMIT_MIB")!["valueFrom"]!["resourceFieldRef"]!;
        Assert.Equal("limits.memory", (string?)field["resource"]);
        Assert.Equal("1Mi", (string?)field["divisor"]);
        var args = container["args"]!.AsArray().Select(a => (string)a!).ToArray();
        Assert.Equal("-c", args[0]);

        // A Unix socket in the server's own directory instead of a TCP port: nothing to pick, nothing to collide with.
        var directory = Directory.CreateTempSubdirectory("platform-redis-");
        var socket = Path.Combine(directory.FullName, "redis.sock");
        var start = new ProcessStartInfo("/bin/sh", ["-c", $"{args[1].Replace("$$", "$", StringComparison.Ordinal)} --port 0 --unixsocket {socket}"])
        {
            WorkingDirectory = directory.FullName,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["REDIS_PASSWORD"] = "manifest-test";
        start.Environment["REDIS_MEMORY_LIMIT_MIB"] = limitMib.ToString(CultureInfo.InvariantCulture);
        using var server = Process.Start(start)!;
        try
        {
            await Waits.UntilAsync(async () => await CliAsync(socket, ["ping"]) == "PONG", TimeSpan.FromSeconds(20), $"redis-server from the {overlay} command", ct);
            Assert.Equal($"maxmemory\n{limitMib * 4 / 5 * 1024 * 1024}", await CliAsync(socket, ["config", "get", "maxmemory"]));
            Assert.Equal("maxmemory-policy\nnoeviction", await CliAsync(socket, ["config", "get", "maxmemory-policy"]));
            Assert.Equal("appendonly\nyes", await CliAsync(socket, ["config", "get", "appendonly"]));
            Assert.Equal("appendfsync\neverysec", await CliAsync(socket, ["config", "get", "appendfsync"]));
            Assert.Equal("OK", await CliAsync(socket, ["set", "written", "1"]));
            await Waits.UntilAsync(() => Directory.Exists(Path.Combine(directory.FullName, "appendonlydir")), TimeSpan.FromSeconds(10), "the AOF directory", ct);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync(ct);
            directory.Delete(recursive: true);
        }
    }

    private static long Mebibytes(string quantity) => quantity switch
    {
        _ when quantity.EndsWith("Gi", StringComparison.Ordinal) => long.Parse(quantity[..^2], CultureInfo.InvariantCulture) * 1024,
        _ when quantity.EndsWith("Mi", StringComparison.Ordinal) => long.Parse(quantity[..^2], CultureInfo.InvariantCulture),
        _ => throw new FormatException($"memory limit '{quantity}': expected Mi or Gi"),
    };

    private static async Task<string> CliAsync(string socket, string[] command)
    {
        var (_, output, _) = await PublishFixture.RunAsync("redis-cli", ["-s", socket, .. command], null,
            environment: new Dictionary<string, string> { ["REDISCLI_AUTH"] = "manifest-test" });
        return output.Trim();
    }
}
