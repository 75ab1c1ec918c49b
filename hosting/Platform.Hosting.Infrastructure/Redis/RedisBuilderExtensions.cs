using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Platform.Hosting.ApplicationModel;
using Platform.Hosting.Infrastructure;

namespace Platform.Hosting.ApplicationModel
{
    /// <summary>A Redis server (Aspire's <c>RedisResource</c>).</summary>
    public sealed class RedisResource(string name, ParameterResource password) : ContainerResource(name), IResourceWithConnectionString
    {
        /// <summary>The endpoint name ("tcp", scheme "redis").</summary>
        public const string PrimaryEndpointName = "tcp";

        /// <inheritdoc />
        public override string TypeDisplayName => "Redis";

        /// <summary>The password (secret; letters and digits only, as the connection-string format needs).</summary>
        public ParameterResource PasswordParameter { get; } = password;

        /// <summary>The server endpoint.</summary>
        public EndpointReference PrimaryEndpoint => new(this, PrimaryEndpointName);

        /// <inheritdoc />
        public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
            $"{PrimaryEndpoint.Property(EndpointProperty.HostAndPort)},password={PasswordParameter}");
    }
}

namespace Platform.Hosting
{
    /// <summary>Aspire's <c>AddRedis</c>.</summary>
    public static class RedisBuilderExtensions
    {
        /// <summary>Image deployed in publish mode.</summary>
        public const string Image = "docker.io/library/redis";

        /// <summary>Pinned image tag (Debian 12 ships 7.0.15 for run mode).</summary>
        public const string Tag = "7.0.15";

        /// <summary>Adds a Redis server with a password and AOF persistence: endpoint "tcp" (scheme redis, 6379 in a pod).</summary>
        public static IResourceBuilder<RedisResource> AddRedis(this IDistributedApplicationBuilder builder, string name,
            int? port = null, IResourceBuilder<ParameterResource>? password = null)
        {
            builder.EnsureNameAvailable(name);
            var pw = password ?? builder.AddParameter($"{name}-password", secret: true);
            var redis = new RedisResource(name, pw.Resource);
            return builder.AddResource(redis)
                .WithEndpoint(new EndpointAnnotation(RedisResource.PrimaryEndpointName, "redis", port, 6379, transport: "tcp"))
                .WithImage(Image, Tag)
                .WithEnvironment("REDIS_PASSWORD", pw)
                .WithArgs("--requirepass", ReferenceExpression.Create($"{pw.Resource}"), "--appendonly", "yes")
                .WithAnnotation(new NativeProcessAnnotation(new RedisLauncher(redis)))
                .WithAnnotation(new ResourceHealthCheckAnnotation("redis", (_, ct) => PingAsync(redis, ct)));
        }

        /// <summary>Keeps the AOF in <c>.platform/&lt;name&gt;/</c> (a PVC in Kubernetes).</summary>
        public static IResourceBuilder<RedisResource> WithDataVolume(this IResourceBuilder<RedisResource> builder, string? name = null) =>
            ResourceBuilderExtensions.WithDataVolume(builder, name, "/data");

        /// <summary>AUTH + PING over RESP: the hosting layer needs no Redis client library for that.</summary>
        internal static async Task<HealthCheckResult> PingAsync(RedisResource redis, CancellationToken ct)
        {
            try
            {
                var endpoint = redis.PrimaryEndpoint;
                using var client = new TcpClient();
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(2));
                await client.ConnectAsync(endpoint.Host, endpoint.Port, timeout.Token).ConfigureAwait(false);
                var stream = client.GetStream();
                var pw = redis.PasswordParameter.Value;
                var command = $"*2\r\n$4\r\nAUTH\r\n${Encoding.UTF8.GetByteCount(pw)}\r\n{pw}\r\n*1\r\n$4\r\nPING\r\n";
                await stream.WriteAsync(Encoding.UTF8.GetBytes(command), timeout.Token).ConfigureAwait(false);
                var buffer = new byte[256];
                var received = new StringBuilder();
                while (!received.ToString().Contains("PONG", StringComparison.Ordinal) && !received.ToString().Contains('-'))
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
            catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
            {
                return HealthCheckResult.Unhealthy(ex.Message, ex);
            }
        }
    }

    /// <summary>Runs redis-server natively on a loopback port.</summary>
    internal sealed class RedisLauncher(RedisResource redis) : INativeProcessLauncher
    {
        public string InstallHint => $"{NativeBinaries.InstallCommand} (apt-get install redis-server)";

        public Task<NativeProcessSpec> PrepareAsync(NativeProcessContext context, CancellationToken cancellationToken)
        {
            var binary = NativeBinaries.Require("redis-server", InstallHint, "/usr/bin/redis-server");
            var port = context.Endpoints[RedisResource.PrimaryEndpointName].Port;
            string[] args =
            [
                "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", context.DataDirectory,
                "--requirepass", redis.PasswordParameter.Value, "--appendonly", "yes", "--save", "",
                "--daemonize", "no", "--logfile", "",
            ];
            return Task.FromResult(new NativeProcessSpec(binary, args));
        }
    }
}
