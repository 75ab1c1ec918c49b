using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Platform.Hosting.Infrastructure;

/// <summary>Runs short preparation commands (initdb, chown) to completion.</summary>
internal static class ProcessRunner
{
    /// <summary>Runs a command, as <paramref name="runAsUser"/> when given, and throws with its output when it fails.</summary>
    public static async Task RunToCompletionAsync(string command, IReadOnlyList<string> args, string? runAsUser,
        ILogger logger, CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (runAsUser is not null)
        {
            psi.FileName = "setpriv";
            foreach (var a in RunAsArguments(runAsUser))
            {
                psi.ArgumentList.Add(a);
            }

            psi.ArgumentList.Add(command);
        }
        else
        {
            psi.FileName = command;
        }

        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi) ?? throw new DistributedApplicationException($"Could not start '{command}'.");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        var output = (await stdout.ConfigureAwait(false)) + (await stderr.ConfigureAwait(false));
        if (process.ExitCode != 0)
        {
            throw new DistributedApplicationException(
                $"'{command} {string.Join(' ', args)}' exited with code {process.ExitCode}: {output.Trim()}");
        }

        logger.LogDebug("{Command} finished: {Output}", Path.GetFileName(command), output.Trim());
    }

    /// <summary>
    /// setpriv's arguments that run the rest of the command line as <paramref name="user"/>. setpriv execs, so the pid
    /// DCP holds is the server's own (runuser/su fork and leave the server behind when stopped).
    /// </summary>
    public static string[] RunAsArguments(string user) => [$"--reuid={user}", $"--regid={user}", "--init-groups", "--"];

    /// <summary>Gives <paramref name="path"/> to <paramref name="user"/>.</summary>
    public static Task ChownAsync(string path, string user, ILogger logger, CancellationToken cancellationToken) =>
        RunToCompletionAsync("chown", ["-R", $"{user}:{user}", path], runAsUser: null, logger, cancellationToken);
}
