using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Npgsql;

[assembly: AssemblyFixture(typeof(Platform.Libs.Tests.ServersFixture))]

namespace Platform.Libs.Tests;

/// <summary>
/// Starts real PostgreSQL 15, redis-server and s3rver on free loopback ports once per test run, in parallel, and kills
/// them (and deletes their data) on dispose. Install them with eng/install.sh.
/// </summary>
public sealed class ServersFixture : IAsyncLifetime
{
    public const string PostgresPassword = "platform-test-pw";
    public const string RedisPassword = "platform-redis-pw";
    public const string S3Key = "S3RVER";

    private const string PostgresBin = "/usr/lib/postgresql/15/bin";
    private readonly List<(Process Process, int StopSignal)> _processes = [];
    private readonly StringBuilder _log = new();
    private string _root = "";

    public string PostgresConnectionString { get; private set; } = "";

    public string RedisConnectionString { get; private set; } = "";

    public string ObjectStoreConnectionString { get; private set; } = "";

    public async ValueTask InitializeAsync()
    {
        _root = Path.Combine(Path.GetTempPath(), $"platform-libs-tests-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_root);

        // The servers run as the postgres user when we are root: they must be able to traverse into their dirs.
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("These tests start Linux server binaries.");
        }

        File.SetUnixFileMode(_root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await Task.WhenAll(StartPostgresAsync(timeout.Token), StartRedisAsync(timeout.Token), StartS3rverAsync(timeout.Token));
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var (process, stopSignal) in _processes)
        {
            try
            {
                if (!process.HasExited)
                {
                    _ = Kill(process.Id, stopSignal);
                    using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                    try
                    {
                        await process.WaitForExitAsync(wait.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        process.Kill(entireProcessTree: true);
                    }
                }
            }
            catch (InvalidOperationException)
            {
                // Never started or already reaped.
            }

            process.Dispose();
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Creates an empty database and returns its connection string: each test owns its schema.</summary>
    public async Task<string> CreateDatabaseAsync(CancellationToken cancellationToken)
    {
        var name = "t_" + Guid.NewGuid().ToString("N")[..16];
        await using var connection = new NpgsqlConnection(PostgresConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
        return new NpgsqlConnectionStringBuilder(PostgresConnectionString) { Database = name, Pooling = false }.ConnectionString;
    }

    private async Task StartPostgresAsync(CancellationToken cancellationToken)
    {
        var dataDir = Path.Combine(_root, "pg");
        Directory.CreateDirectory(dataDir);
        var passwordFile = Path.Combine(_root, "pg.pw");
        await File.WriteAllTextAsync(passwordFile, PostgresPassword, cancellationToken);
        if (IsRoot)
        {
            await RunAsync("chown", ["postgres:postgres", dataDir, passwordFile], cancellationToken);
        }

        await RunAsync(
            AsPostgres(Path.Combine(PostgresBin, "initdb")),
            [.. AsPostgresArgs(Path.Combine(PostgresBin, "initdb")), "-D", dataDir, "-U", "postgres", "--pwfile", passwordFile,
                "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            cancellationToken);

        var port = FreePort();
        Start("postgres", AsPostgres(Path.Combine(PostgresBin, "postgres")),
            [.. AsPostgresArgs(Path.Combine(PostgresBin, "postgres")), "-D", dataDir, "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "-k", dataDir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off",
                "-c", "synchronous_commit=off", "-c", "max_connections=200"],
            stopSignal: 2);

        PostgresConnectionString = $"Host=127.0.0.1;Port={port};Username=postgres;Password={PostgresPassword};Database=postgres";
        await WaitUntilAsync("postgres", async ct =>
        {
            await using var connection = new NpgsqlConnection(PostgresConnectionString + ";Pooling=false");
            await connection.OpenAsync(ct);
        }, cancellationToken);
    }

    private async Task StartRedisAsync(CancellationToken cancellationToken)
    {
        var dir = Path.Combine(_root, "redis");
        Directory.CreateDirectory(dir);
        var port = FreePort();
        Start("redis", "/usr/bin/redis-server",
            ["--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", dir,
                "--requirepass", RedisPassword, "--appendonly", "yes", "--save", ""]);
        RedisConnectionString = $"127.0.0.1:{port},password={RedisPassword}";
        await WaitForPortAsync("redis", port, cancellationToken);
    }

    private async Task StartS3rverAsync(CancellationToken cancellationToken)
    {
        var script = Path.Combine(RepositoryRoot(), "eng", "tools", "node_modules", "s3rver", "bin", "s3rver.js");
        if (!File.Exists(script))
        {
            throw new InvalidOperationException($"s3rver not installed at {script}: run eng/install.sh.");
        }

        var dir = Path.Combine(_root, "s3");
        Directory.CreateDirectory(dir);
        var port = FreePort();
        Start("s3rver", "node", [script, "-d", dir, "-a", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--silent"]);
        ObjectStoreConnectionString = $"Endpoint=http://127.0.0.1:{port};AccessKey={S3Key};SecretKey={S3Key}";
        await WaitForPortAsync("s3rver", port, cancellationToken);
    }

    private static bool IsRoot => Geteuid() == 0;

    // initdb and postgres refuse to run as root.
    private static string AsPostgres(string binary) => IsRoot ? "setpriv" : binary;

    private static string[] AsPostgresArgs(string binary) =>
        IsRoot ? ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", binary] : [];

    // SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for pooled clients); the others get SIGTERM, because a
    // shell running us in the background may have left SIGINT ignored, which node would inherit.
    private void Start(string name, string fileName, string[] arguments, int stopSignal = 15)
    {
        var info = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {name} ({fileName}).");
        process.OutputDataReceived += (_, e) => Append(name, e.Data);
        process.ErrorDataReceived += (_, e) => Append(name, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        lock (_processes)
        {
            _processes.Add((process, stopSignal));
        }
    }

    private void Append(string name, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            if (_log.Length < 64 * 1024)
            {
                _log.Append(name).Append(": ").AppendLine(line);
            }
        }
    }

    private static async Task RunAsync(string fileName, string[] arguments, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{fileName} {string.Join(' ', arguments)} exited {process.ExitCode}: {await stderr}{await stdout}");
        }
    }

    private async Task WaitUntilAsync(string name, Func<CancellationToken, Task> probe, CancellationToken cancellationToken)
    {
        Exception? last = null;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await probe(cancellationToken);
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or SocketException or IOException)
            {
                last = ex;
            }

            await Task.Delay(50, cancellationToken);
        }

        throw new TimeoutException($"{name} did not become ready: {last?.Message}\n{_log}");
    }

    private Task WaitForPortAsync(string name, int port, CancellationToken cancellationToken) =>
        WaitUntilAsync(name, async ct =>
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, port, ct);
        }, cancellationToken);

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (Directory.Exists(Path.Combine(dir.FullName, "eng", "tools")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No eng/tools above {AppContext.BaseDirectory}.");
    }

    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint Geteuid();

    [DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);
}
