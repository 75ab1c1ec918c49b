using System.Diagnostics;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Platform.Integration.Tests;

/// <summary>The AppHost as users run it: a process that prints the dashboard URL and leaves nothing behind.</summary>
public sealed partial class AppHostProcessTests
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(2)] // SIGINT (Ctrl+C): ordered shutdown
    [InlineData(15)] // SIGTERM
    [InlineData(9)] // SIGKILL: the kernel kills the children (parent-death signal)
    public async Task KillingTheAppHostLeavesNoProcessBehind(int signal)
    {
        var stateDir = Directory.CreateTempSubdirectory("platform-apphost-").FullName;
        var appHostDll = Path.Combine(AppContext.BaseDirectory, "Platform.AppHost.dll");
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { appHostDll, "--dashboard-port", "0", "--Platform:StateDirectory", stateDir })
        {
            psi.ArgumentList.Add(a);
        }

        using var appHost = Process.Start(psi)!;
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var dashboard = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var login = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var healthy = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        appHost.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            output.Enqueue(e.Data);
            if (DashboardLine().Match(e.Data) is { Success: true } d)
            {
                dashboard.TrySetResult(d.Groups[1].Value);
            }

            if (LoginLine().Match(e.Data) is { Success: true } l)
            {
                login.TrySetResult(Uri.UnescapeDataString(l.Groups[1].Value));
            }

            if (e.Data.Contains("Not every resource became healthy", StringComparison.Ordinal))
            {
                healthy.TrySetException(new TimeoutException(e.Data));
            }

            if (HealthyLine().Match(e.Data) is { Success: true } h)
            {
                healthy.TrySetResult(TimeSpan.FromSeconds(double.Parse(h.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)));
            }
        };
        appHost.ErrorDataReceived += (_, e) => output.Enqueue(e.Data ?? string.Empty);
        appHost.BeginOutputReadLine();
        appHost.BeginErrorReadLine();

        try
        {
            string url;
            string token;
            try
            {
                url = await dashboard.Task.WaitAsync(TimeSpan.FromSeconds(60), Ct);
                token = await login.Task.WaitAsync(TimeSpan.FromSeconds(5), Ct);
                await healthy.Task.WaitAsync(TimeSpan.FromSeconds(90), Ct);
            }
            catch (TimeoutException)
            {
                Assert.Fail($"The AppHost did not report all resources healthy. Output:\n{string.Join('\n', output.TakeLast(40))}");
                throw;
            }

            using var http = new HttpClient { BaseAddress = new Uri(url) };
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await http.GetAsync("/api/resources", Ct)).StatusCode);
            http.DefaultRequestHeaders.Authorization = new("Bearer", token);
            var resources = await http.GetFromJsonAsync<JsonElement>("/api/resources", Ct);
            var pids = resources.EnumerateArray().SelectMany(r => r.GetProperty("pids").EnumerateArray().Select(p => p.GetInt32())).ToList();
            Assert.True(pids.Count >= 8, $"expected every server and service replica to have a pid, got {pids.Count}");
            Assert.All(resources.EnumerateArray().Where(r => r.GetProperty("type").GetString() != "Parameter"),
                r => Assert.Equal("Healthy", r.GetProperty("health").GetString()));

            Assert.Equal(0, Kill(appHost.Id, signal));
            await appHost.WaitForExitAsync(Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);

            var deadline = DateTime.UtcNow.AddSeconds(10);
            List<int> alive;
            do
            {
                alive = pids.Where(IsRunning).ToList();
                if (alive.Count == 0)
                {
                    break;
                }

                await Task.Delay(100, Ct);
            }
            while (DateTime.UtcNow < deadline);

            Assert.True(alive.Count == 0,
                $"still running after signal {signal}: {string.Join(", ", alive.Select(Describe))}\n{string.Join('\n', output.TakeLast(30))}");
        }
        finally
        {
            if (!appHost.HasExited)
            {
                appHost.Kill(entireProcessTree: true);
            }

            try
            {
                Directory.Delete(stateDir, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>A zombie has exited; only its parent (init, here) has yet to reap it.</summary>
    private static bool IsRunning(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..][0];
            return state != 'Z' && state != 'X';
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static string Describe(int pid)
    {
        try
        {
            return $"{pid} ({File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim()})";
        }
        catch (IOException)
        {
            return pid.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    [DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);

    [GeneratedRegex(@"^Dashboard: (http://127\.0\.0\.1:\d+)")]
    private static partial Regex DashboardLine();

    [GeneratedRegex(@"^Login: http://127\.0\.0\.1:\d+/login\?t=(\S+)")]
    private static partial Regex LoginLine();

    [GeneratedRegex(@"resources healthy in ([\d.]+) s")]
    private static partial Regex HealthyLine();
}
