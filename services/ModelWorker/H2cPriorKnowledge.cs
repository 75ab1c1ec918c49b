using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Platform.ModelWorker;

/// <summary>
/// Serves HTTP/2 with prior knowledge (h2c) and HTTP/1.1 on the same cleartext port.
/// </summary>
/// <remarks>
/// Kestrel cannot do this by configuration: without TLS there is no ALPN, and at bind time Kestrel turns an
/// <c>Http1AndHttp2</c> cleartext endpoint into HTTP/1.1 only (warning 64 "HTTP/2 is not enabled ... TLS is not
/// enabled"); it never looks at the client preface. So each public endpoint is HTTP/2-only, which keeps the inference
/// hot path native, and a connection middleware peeks at the first bytes: the HTTP/2 preface goes on to Kestrel's
/// HTTP/2 stack; anything else (health probes, curl, browsers) is piped to a private HTTP/1.1 listener on loopback.
/// Declaring listeners in code makes Kestrel ignore ASPNETCORE_URLS, so the public addresses are read from it here.
/// </remarks>
internal static partial class H2cPriorKnowledge
{
    private static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    /// <summary>Binds every URL of <c>urls</c>/ASPNETCORE_URLS as h2c + HTTP/1.1, plus the private HTTP/1.1 listener.</summary>
    public static void ListenH2cAndHttp1(this KestrelServerOptions kestrel, IConfiguration configuration, ILoggerFactory? loggerFactory = null)
    {
        ListenOptions? http1 = null;
        kestrel.Listen(IPAddress.Loopback, 0, listen =>
        {
            listen.Protocols = HttpProtocols.Http1;
            http1 = listen;
        });

        var urls = configuration["urls"] is { Length: > 0 } configured ? configured : "http://localhost:5000";
        foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var address = BindingAddress.Parse(url);
            if (!string.Equals(address.Scheme, "http", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException($"ModelWorker serves cleartext h2c only; '{url}' is not an http:// address.");
            }
            void Configure(ListenOptions listen)
            {
                listen.Protocols = HttpProtocols.Http2;
                listen.Use(next => connection => RouteAsync(connection, next, http1!));
            }
            if (address.Host is "localhost")
            {
                kestrel.ListenLocalhost(address.Port, Configure);
            }
            else if (address.Host is "*" or "+" or "0.0.0.0" or "[::]" || !IPAddress.TryParse(address.Host.Trim('[', ']'), out var ip))
            {
                kestrel.ListenAnyIP(address.Port, Configure);
            }
            else
            {
                kestrel.Listen(ip, address.Port, Configure);
            }
        }
    }

    private static async Task RouteAsync(ConnectionContext connection, ConnectionDelegate next, ListenOptions http1)
    {
        if (await StartsWithPrefaceAsync(connection.Transport.Input, connection.ConnectionClosed))
        {
            await next(connection);
            return;
        }
        await PipeToAsync(connection, http1.IPEndPoint!);
    }

    private static async Task<bool> StartsWithPrefaceAsync(PipeReader input, CancellationToken cancellationToken)
    {
        while (true)
        {
            var read = await input.ReadAsync(cancellationToken);
            var buffer = read.Buffer;
            var (matches, complete) = Compare(buffer);
            if (!matches || complete || read.IsCompleted)
            {
                // Nothing consumed or examined: whoever handles the connection reads these bytes again.
                input.AdvanceTo(buffer.Start);
                return matches && complete;
            }
            // A partial preface so far: wait for more bytes.
            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static (bool Matches, bool Complete) Compare(ReadOnlySequence<byte> buffer)
    {
        var length = (int)Math.Min(buffer.Length, Preface.Length);
        Span<byte> head = stackalloc byte[24];
        buffer.Slice(0, length).CopyTo(head);
        return (head[..length].SequenceEqual(Preface[..length]), length == Preface.Length);
    }

    private static async Task PipeToAsync(ConnectionContext connection, IPEndPoint target)
    {
        using var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(target, connection.ConnectionClosed);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed);
        var upstream = connection.Transport.Input.CopyToAsync(stream, stop.Token);
        var downstream = stream.CopyToAsync(connection.Transport.Output, stop.Token);
        try
        {
            if (await Task.WhenAny(upstream, downstream) == upstream)
            {
                // The client finished sending; let the HTTP/1.1 side answer, then close.
                socket.Shutdown(SocketShutdown.Send);
                await downstream;
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException)
        {
            // Either side went away; the connection ends here.
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(upstream, downstream).ContinueWith(static _ => { }, CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }
}
