using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Platform.Hosting.Infrastructure;

/// <summary>Runs short preparation commands (initdb, chown) to completion.</summary>
public static class ProcessRunner
{
    /// <summary>Runs a command, as <paramref name="runAsUser"/> when given, and throws with its output when it fails.</summary>
    public static async Task RunToCompletionAsync(string command, IReadOnlyList<string> args, string? runAsUser,
        ILogger logger, CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (runAsUser is not null)
        {
            psi.FileName = "setpriv";
            foreach (var a in new[] { $"--reuid={runAsUser}", $"--regid={runAsUser}", "--init-groups", "--", command })
            {
                psi.ArgumentList.Add(a);
            }
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

    /// <summary>Gives <paramref name="directory"/> to <paramref name="user"/> (no-op when null).</summary>
    public static async Task ChownAsync(string directory, string? user, CancellationToken cancellationToken)
    {
        if (user is null)
        {
            return;
        }

        using var process = Process.Start(new ProcessStartInfo("chown", ["-R", $"{user}:{user}", directory]) { UseShellExecute = false })
            ?? throw new DistributedApplicationException("Could not start chown.");
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new DistributedApplicationException($"chown -R {user} {directory} failed with code {process.ExitCode}.");
        }
    }
}
