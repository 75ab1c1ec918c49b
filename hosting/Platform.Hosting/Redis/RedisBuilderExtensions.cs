using System.Net.Sockets;
using System.Text;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Platform.Hosting.Infrastructure;

namespace Aspire.Hosting.ApplicationModel
{
    /// <summary>
    /// Redis as a native process (run mode): Debian's <c>redis-server</c> on a loopback port with a password and AOF
    /// persistence. Publish mode uses Aspire's <c>RedisResource</c> under the same name.
    /// </summary>
    public sealed class NativeRedisResource(string name, string command, string workingDirectory, ParameterResource password)
        : ExecutableResource(name, command, workingDirectory), IResourceWithConnectionString
    {
        /// <summary>The endpoint name, as Aspire's Redis resource names it.</summary>
        public const string PrimaryEndpointName = "tcp";

        /// <summary>The password (secret parameter).</summary>
        public ParameterResource PasswordParameter { get; } = password;

        /// <summary>The server's endpoint.</summary>
        public EndpointReference PrimaryEndpoint => new(this, PrimaryEndpointName);

        /// <inheritdoc />
        public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
            $"{PrimaryEndpoint.Property(EndpointProperty.HostAndPort)},password={PasswordParameter}");
    }
}

namespace Platform.Hosting
{
    /// <summary>Redis for Platform: a native server in run mode, Aspire's container resource in publish mode.</summary>
    public static class RedisBuilderExtensions
    {
        /// <summary>The image tag deployed in publish mode: the release Debian 12 runs natively, so both modes behave alike.</summary>
        public const string ImageTag = "7.0.15";

        /// <summary>
        /// Server options publish mode adds to Aspire's Redis command (a shell command line): the append-only file run
        /// mode has too, and <c>maxmemory</c> at 80 % of the container's memory limit (<c>REDIS_MEMORY_LIMIT_MIB</c>, which
        /// the Kubernetes generator sets from the downward API; unset means no limit) with <c>noeviction</c>. A full Redis
        /// then refuses writes (inference answers 503 + Retry-After, the cache skips its writes) until cached responses
        /// expire, instead of being OOM-killed and reloading the same data into the same limit; the 20 % left covers the
        /// AOF rewrite's copy-on-write pages and buffers. Nothing is evicted: usage records and ledger counters are data.
        /// </summary>
        public const string ServerOptions =
            "--appendonly yes --appendfsync everysec --maxmemory $((REDIS_MEMORY_LIMIT_MIB * 4 / 5))mb --maxmemory-policy noeviction";

        /// <summary>
        /// Adds Redis named <paramref name="name"/> (password parameter <c>&lt;name&gt;-password</c>, AOF persistence).
        /// Run mode: <c>redis-server</c> as a native process, data in <c>.platform/&lt;name&gt;</c>. Publish mode: Aspire's
        /// <c>AddRedis</c> with a data volume, its snapshots (<c>--save 60 1</c>) and the append-only file
        /// and a memory bound (<see cref="ServerOptions"/>): Redis holds usage records until AdminApi moves them to Postgres, and the
        /// ledger's limits and charges; with snapshots alone a restarted pod would lose up to a minute of them.
        /// </summary>
        public static IResourceBuilder<IResourceWithConnectionString> AddPlatformRedis(this IDistributedApplicationBuilder builder, string name)
        {
            ArgumentNullException.ThrowIfNull(builder);
            var password = builder.AddPassword($"{name}-password");
            return builder.ExecutionContext.IsPublishMode
                ? builder.AddRedis(name, password: password).WithImageTag(ImageTag).WithDataVolume($"{name}-data").WithPersistence()
                    .WithArgs(AppendToServerCommand)
                : builder.AddNativeRedis(name, password.Resource);
        }

        /// <summary>
        /// Aspire runs its Redis image as <c>/bin/sh -c "redis-server …"</c> built by an earlier argument callback; the
        /// options go at the end of that command. A different shape fails the publish instead of dropping them.
        /// </summary>
        private static void AppendToServerCommand(CommandLineArgsCallbackContext context)
        {
            var shell = context.Args.IndexOf("-c");
            if (shell < 0 || shell + 1 >= context.Args.Count || context.Args[shell + 1] is not string command
                || !command.StartsWith("redis-server", StringComparison.Ordinal))
            {
                throw new InvalidOperationException(
                    $"Aspire's Redis arguments are no longer '-c \"redis-server …\"' ({string.Join(' ', context.Args)}); {ServerOptions} cannot be added");
            }

            context.Args[shell + 1] = $"{command} {ServerOptions}";
        }

        /// <summary>Adds Redis as a native process (run mode only).</summary>
        public static IResourceBuilder<NativeRedisResource> AddNativeRedis(this IDistributedApplicationBuilder builder, string name, ParameterResource password)
        {
            ArgumentNullException.ThrowIfNull(builder);
            var redisServer = NativeBinaries.Require("redis-server", "apt-get install redis-server", "/usr/bin/redis-server");
            var data = NativeDataDirectory.From(builder);
            var directory = data.For(name);
            var configFile = Path.Combine(directory, "redis.conf");
            var redis = new NativeRedisResource(name, redisServer, directory, password);

            // The password goes into a config file (mode 600) rather than onto the command line, where ps would show it.
            builder.Eventing.Subscribe<BeforeResourceStartedEvent>(redis, async (_, ct) =>
            {
                var secret = await password.GetValueAsync(ct).ConfigureAwait(false);
                var config = new StringBuilder()
                    .AppendLine("bind 127.0.0.1")
                    .AppendLine("protected-mode yes")
                    .AppendLine($"dir {directory}")
                    .AppendLine($"requirepass {secret}")
                    .AppendLine("appendonly yes")
                    .AppendLine(data.Durable ? "appendfsync everysec" : "appendfsync no")
                    .AppendLine("save \"\"")
                    .AppendLine("daemonize no")
                    .AppendLine("logfile \"\"")
                    .ToString();
                await File.WriteAllTextAsync(configFile, config, ct).ConfigureAwait(false);
                if (!OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(configFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                }
            });

            var healthCheck = $"{name}_check";
            builder.Services.AddHealthChecks().AddAsyncCheck(healthCheck, ct => PingAsync(redis, ct));
            return builder.AddResource(redis)
                .WithEndpoint(name: NativeRedisResource.PrimaryEndpointName, scheme: "redis", isProxied: false)
                .WithIconName("Memory")
                .WithArgs(context =>
                {
                    context.Args.Add(configFile);
                    context.Args.Add("--port");
                    context.Args.Add(redis.PrimaryEndpoint.Property(EndpointProperty.TargetPort));
                })
                .WithHealthCheck(healthCheck);
        }

        /// <summary>AUTH + PING over RESP: the AppHost needs no Redis client library for that.</summary>
        private static async Task<HealthCheckResult> PingAsync(NativeRedisResource redis, CancellationToken ct)
        {
            try
            {
                var endpoint = redis.PrimaryEndpoint;
                using var client = new TcpClient();
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(2));
                await client.ConnectAsync(endpoint.Host, endpoint.Port, timeout.Token).ConfigureAwait(false);
                var stream = client.GetStream();
                var password = await redis.PasswordParameter.GetValueAsync(ct).ConfigureAwait(false) ?? string.Empty;
                var command = $"*2\r\n$4\r\nAUTH\r\n${Encoding.UTF8.GetByteCount(password)}\r\n{password}\r\n*1\r\n$4\r\nPING\r\n";
                await stream.WriteAsync(Encoding.UTF8.GetBytes(command), timeout.Token).ConfigureAwait(false);
                var buffer = new byte[256];
                var received = new StringBuilder();
                while (!received.ToString().Contains("PONG", StringComparison.Ordinal) && !received.ToString().Contains('-', StringComparison.Ordinal))
                {
                    var n = await stream.ReadAsync(buffer, timeout.Token).ConfigureAwait(false);
                    if (n == 0)
                    {
                        break;
                    }

                    received.Append(Encoding.UTF8.GetString(buffer, 0, n));
                }

                var reply = received.ToString();
                return reply.Contains("+PONG", StringComparison.Ordinal)
                    ? HealthCheckResult.Healthy("PING answered PONG")
                    : HealthCheckResult.Unhealthy($"Unexpected reply: {reply.Trim()}");
            }
            catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or InvalidOperationException)
            {
                return HealthCheckResult.Unhealthy(ex.Message, ex);
            }
        }
    }
}
