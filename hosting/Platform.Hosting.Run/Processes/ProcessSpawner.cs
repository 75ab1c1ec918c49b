using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Platform.Hosting.Processes;

/// <summary>What to start.</summary>
/// <param name="Command">Program path or name.</param>
/// <param name="Args">Arguments.</param>
/// <param name="WorkingDirectory">Working directory.</param>
/// <param name="Environment">Variables added to (or replacing) the AppHost's environment.</param>
/// <param name="RunAsUser">Switch to this user first (the AppHost runs as root).</param>
public sealed record ProcessLaunch(
    string Command,
    IReadOnlyList<string> Args,
    string WorkingDirectory,
    IReadOnlyDictionary<string, string> Environment,
    string? RunAsUser = null);

/// <summary>
/// Starts child processes so that none outlives the AppHost: each runs under
/// <c>setpriv --pdeathsig KILL</c> (the kernel kills it when its parent dies, SIGKILL included) and
/// <c>setsid</c> (its own process group, so a terminal's Ctrl+C reaches only the AppHost, which then
/// stops children in dependency order). Linux ties the death signal to the forking thread, so all
/// forks happen on one dedicated thread that lives as long as the spawner.
/// </summary>
public sealed partial class ProcessSpawner : IDisposable
{
    private readonly BlockingCollection<(ProcessStartInfo Info, TaskCompletionSource<Process> Result)> _queue = new();
    private readonly Thread _thread;

    /// <summary>Starts the spawning thread.</summary>
    public ProcessSpawner()
    {
        _thread = new Thread(Loop) { IsBackground = true, Name = "platform-process-spawner" };
        _thread.Start();
    }

    /// <summary>Starts a process; output is read by the caller through the returned <see cref="Process"/>.</summary>
    public Task<Process> StartAsync(ProcessLaunch launch)
    {
        var psi = new ProcessStartInfo
        {
            FileName = "setpriv",
            WorkingDirectory = launch.WorkingDirectory,
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        psi.ArgumentList.Add("--pdeathsig");
        psi.ArgumentList.Add("KILL");
        if (launch.RunAsUser is not null)
        {
            psi.ArgumentList.Add($"--reuid={launch.RunAsUser}");
            psi.ArgumentList.Add($"--regid={launch.RunAsUser}");
            psi.ArgumentList.Add("--init-groups");
        }

        psi.ArgumentList.Add("--");
        psi.ArgumentList.Add("setsid");
        psi.ArgumentList.Add(launch.Command);
        foreach (var arg in launch.Args)
        {
            psi.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in launch.Environment)
        {
            psi.Environment[key] = value;
        }

        var tcs = new TaskCompletionSource<Process>(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Add((psi, tcs));
        return tcs.Task;
    }

    private void Loop()
    {
        foreach (var (info, result) in _queue.GetConsumingEnumerable())
        {
            try
            {
                var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {info.FileName}.");
                result.SetResult(process);
            }
            catch (Exception ex)
            {
                result.SetException(ex);
            }
        }
    }

    /// <summary>Sends <paramref name="signal"/> to the process group led by <paramref name="pid"/>.</summary>
    public static bool SignalGroup(int pid, int signal) => Kill(-pid, signal) == 0;

    /// <summary>True while a process with this id exists.</summary>
    public static bool IsAlive(int pid) => Kill(pid, 0) == 0;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    /// <inheritdoc />
    public void Dispose()
    {
        // Ending the thread kills every child still alive (their death signal is tied to it):
        // call this only once they have been stopped in order.
        _queue.CompleteAdding();
    }
}

/// <summary>POSIX signal numbers used here.</summary>
public static class Signals
{
    /// <summary>Interrupt.</summary>
    public const int SigInt = 2;

    /// <summary>Kill (cannot be caught).</summary>
    public const int SigKill = 9;

    /// <summary>Terminate.</summary>
    public const int SigTerm = 15;
}
