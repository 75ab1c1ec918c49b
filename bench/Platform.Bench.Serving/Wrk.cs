using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

/// <summary>wrk's figures for one step: requests per second, latency percentiles and non-2xx answers.</summary>
internal sealed record WrkResult(double Throughput, double P50Ms, double P99Ms, long Errors);

/// <summary>
/// wrk (Debian's package) as an independent load generator beside the benchmark's own: one thread, keep-alive
/// connections, the same request bytes (a Lua script sets the method, headers and body).
/// </summary>
internal static partial class Wrk
{
    /// <summary>wrk's path, or null when it is not installed.</summary>
    public static string? Find() =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, "wrk")).FirstOrDefault(File.Exists);

    /// <summary>Runs wrk for <paramref name="duration"/> at <paramref name="concurrency"/> connections.</summary>
    public static async Task<WrkResult> RunAsync(string wrk, Uri server, string path, string? bearer, (byte[] Body, int? JsonLength) request,
        int concurrency, TimeSpan duration)
    {
        var directory = Directory.CreateTempSubdirectory("platform-bench-wrk-");
        try
        {
            var script = await WriteScriptAsync(directory, bearer, request);
            var start = new ProcessStartInfo(wrk) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in new[] { "-t1", $"-c{concurrency}", $"-d{(int)Math.Ceiling(duration.TotalSeconds)}s", "--latency", "-s", script, new Uri(server, path).ToString() })
            {
                start.ArgumentList.Add(argument);
            }

            using var process = Process.Start(start) ?? throw new InvalidOperationException("wrk did not start");
            var output = await process.StandardOutput.ReadToEndAsync();
            await process.WaitForExitAsync();
            var throughput = RequestsPerSecond().Match(output);
            if (process.ExitCode != 0 || !throughput.Success)
            {
                throw new InvalidOperationException($"wrk failed ({process.ExitCode}): {output}{await process.StandardError.ReadToEndAsync()}");
            }

            var errors = NonSuccess().Match(output);
            return new WrkResult(
                double.Parse(throughput.Groups[1].Value, CultureInfo.InvariantCulture),
                Percentile(output, "50%"),
                Percentile(output, "99%"),
                errors.Success ? long.Parse(errors.Groups[1].Value, CultureInfo.InvariantCulture) : 0);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    /// <summary>Writes the request body and the Lua script that sends it into <paramref name="directory"/>; returns the script's path.</summary>
    public static async Task<string> WriteScriptAsync(DirectoryInfo directory, string? bearer, (byte[] Body, int? JsonLength) request)
    {
        var body = Path.Combine(directory.FullName, "body.bin");
        await File.WriteAllBytesAsync(body, request.Body);
        var headers = LeanHttpConnection.Headers(bearer, request).Select(h => $"wrk.headers[\"{h.Name}\"] = \"{h.Value}\"");
        var script = Path.Combine(directory.FullName, "request.lua");
        await File.WriteAllTextAsync(script, $"""
            wrk.method = "POST"
            local file = io.open("{body}", "rb")
            wrk.body = file:read("*a")
            file:close()
            {string.Join("\n", headers)}
            """);
        return script;
    }

    // "    50%  123.00us" / "1.23ms" / "1.01s" in the latency distribution, in milliseconds.
    private static double Percentile(string output, string label)
    {
        var match = Regex.Match(output, $@"^\s*{Regex.Escape(label)}\s+([0-9.]+)(us|ms|s)\s*$", RegexOptions.Multiline);
        if (!match.Success)
        {
            return double.NaN;
        }

        var value = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        return match.Groups[2].Value switch { "us" => value / 1000, "ms" => value, _ => value * 1000 };
    }

    [GeneratedRegex(@"Requests/sec:\s+([0-9.]+)")]
    private static partial Regex RequestsPerSecond();

    [GeneratedRegex(@"Non-2xx or 3xx responses:\s+([0-9]+)")]
    private static partial Regex NonSuccess();
}
