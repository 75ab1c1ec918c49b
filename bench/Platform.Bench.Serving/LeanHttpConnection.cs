using System.Buffers.Text;
using System.Net;
using System.Net.Sockets;
using System.Text;

/// <summary>
/// One keep-alive HTTP/1.1 connection of the lean load generator: the whole request (head and body) is encoded once
/// and written as is; the response is read into one reused buffer and parsed only as far as the status, its length
/// (Content-Length or chunked) and, when asked, the Server-Timing header. A request allocates nothing, so the client's
/// share of the cores stays small and the servers' costs are what the benchmark sees.
/// </summary>
internal sealed class LeanHttpConnection : IDisposable
{
    private static ReadOnlySpan<byte> HeaderEnd => "\r\n\r\n"u8;

    private readonly EndPoint _endpoint;
    private readonly byte[] _request;
    private byte[] _buffer = new byte[16 * 1024];
    private Socket? _socket;

    private LeanHttpConnection(EndPoint endpoint, byte[] request)
    {
        _endpoint = endpoint;
        _request = request;
    }

    /// <summary>
    /// The headers of the benchmark's request besides Host and Content-Length: its content type, the tenant key and, for
    /// the binary tensor extension, the JSON part's length. The lean client and wrk's script send the same set.
    /// </summary>
    public static IEnumerable<(string Name, string Value)> Headers(string? bearer, (byte[] Body, int? JsonLength) request)
    {
        yield return ("Content-Type", request.JsonLength is null ? "application/json" : "application/octet-stream");
        if (bearer is not null)
        {
            yield return ("Authorization", $"Bearer {bearer}");
        }

        if (request.JsonLength is { } jsonLength)
        {
            yield return (Platform.Inference.OpenInference.InferRequestReader.HeaderContentLengthHeader, jsonLength.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    /// <summary>
    /// A sender factory for <paramref name="path"/> on <paramref name="server"/>: the request is encoded once, and each
    /// concurrent caller of the load loop gets its own connection.
    /// </summary>
    public static Func<ISender> Factory(Uri server, string path, string? bearer, (byte[] Body, int? JsonLength) request)
    {
        var head = new StringBuilder()
            .Append("POST ").Append(path).Append(" HTTP/1.1\r\n")
            .Append("Host: ").Append(server.Authority).Append("\r\n")
            .Append("Content-Length: ").Append(request.Body.Length).Append("\r\n");
        foreach (var (name, value) in Headers(bearer, request))
        {
            head.Append(name).Append(": ").Append(value).Append("\r\n");
        }

        byte[] encoded = [.. Encoding.ASCII.GetBytes(head.Append("\r\n").ToString()), .. request.Body];
        EndPoint endpoint = IPAddress.TryParse(server.Host, out var address) ? new IPEndPoint(address, server.Port) : new DnsEndPoint(server.Host, server.Port);
        return () => new Sender(new LeanHttpConnection(endpoint, encoded));
    }

    /// <summary>Sends the request and reads the whole response: (status 200, Server-Timing when <paramref name="timing"/>).</summary>
    public async ValueTask<(bool Ok, string? ServerTiming)> SendAsync(bool timing)
    {
        try
        {
            if (_socket is null)
            {
                _socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await _socket.ConnectAsync(_endpoint);
            }

            for (var sent = 0; sent < _request.Length;)
            {
                sent += await _socket.SendAsync(_request.AsMemory(sent), SocketFlags.None);
            }

            return await ReadResponseAsync(_socket, timing);
        }
        catch (Exception e) when (e is SocketException or IOException or FormatException)
        {
            // A reset or closed connection is an error of this request; the next one reconnects.
            _socket?.Dispose();
            _socket = null;
            return (false, null);
        }
    }

    private async ValueTask<(bool Ok, string? ServerTiming)> ReadResponseAsync(Socket socket, bool timing)
    {
        var filled = 0;
        int headEnd;
        while ((headEnd = _buffer.AsSpan(0, filled).IndexOf(HeaderEnd)) < 0)
        {
            filled += await ReceiveAsync(socket, filled);
        }

        var (status, contentLength, chunked, serverTiming) = ParseHead(_buffer.AsSpan(0, headEnd), timing);
        var bodyStart = headEnd + HeaderEnd.Length;
        if (!chunked)
        {
            while (filled < bodyStart + contentLength)
            {
                filled += await ReceiveAsync(socket, filled);
            }
        }
        else
        {
            // Chunks: "<hex size>\r\n<data>\r\n", ending with a zero-size chunk and an empty trailer line.
            var position = bodyStart;
            while (true)
            {
                int lineEnd;
                while ((lineEnd = _buffer.AsSpan(position, filled - position).IndexOf("\r\n"u8)) < 0)
                {
                    filled += await ReceiveAsync(socket, filled);
                }

                var sizeText = _buffer.AsSpan(position, lineEnd);
                var extension = sizeText.IndexOf((byte)';');
                if (!Utf8Parser.TryParse(extension < 0 ? sizeText : sizeText[..extension], out int size, out _, 'x'))
                {
                    throw new FormatException("bad chunk size");
                }

                position += lineEnd + 2 + size + 2;
                while (filled < position)
                {
                    filled += await ReceiveAsync(socket, filled);
                }

                if (size == 0)
                {
                    break;
                }
            }
        }

        return (status == 200, serverTiming);
    }

    private async ValueTask<int> ReceiveAsync(Socket socket, int filled)
    {
        if (filled == _buffer.Length)
        {
            Array.Resize(ref _buffer, _buffer.Length * 2);
        }

        var received = await socket.ReceiveAsync(_buffer.AsMemory(filled), SocketFlags.None);
        return received > 0 ? received : throw new IOException("the server closed the connection");
    }

    private static (int Status, int ContentLength, bool Chunked, string? ServerTiming) ParseHead(ReadOnlySpan<byte> head, bool timing)
    {
        // "HTTP/1.1 200 OK"
        if (head.Length < 12 || !Utf8Parser.TryParse(head.Slice(9, 3), out int status, out _))
        {
            throw new FormatException("bad status line");
        }

        var contentLength = 0;
        var chunked = false;
        string? serverTiming = null;
        var lines = head[(head.IndexOf("\r\n"u8) + 2)..];
        while (!lines.IsEmpty)
        {
            var end = lines.IndexOf("\r\n"u8);
            var line = end < 0 ? lines : lines[..end];
            lines = end < 0 ? [] : lines[(end + 2)..];
            var colon = line.IndexOf((byte)':');
            if (colon < 0)
            {
                continue;
            }

            var name = line[..colon];
            var value = line[(colon + 1)..].Trim((byte)' ');
            if (Ascii.EqualsIgnoreCase(name, "Content-Length"u8))
            {
                Utf8Parser.TryParse(value, out contentLength, out _);
            }
            else if (Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8))
            {
                chunked = Ascii.EqualsIgnoreCase(value, "chunked"u8);
            }
            else if (timing && Ascii.EqualsIgnoreCase(name, "Server-Timing"u8))
            {
                serverTiming = Encoding.ASCII.GetString(value);
            }
        }

        return (status, contentLength, chunked, serverTiming);
    }

    public void Dispose() => _socket?.Dispose();

    private sealed class Sender(LeanHttpConnection connection) : ISender
    {
        public ValueTask<(bool Ok, string? ServerTiming)> SendAsync(bool timing) => connection.SendAsync(timing);

        public void Dispose() => connection.Dispose();
    }
}

/// <summary>One concurrent caller's way to send the benchmark's request (its own connection, or a shared client).</summary>
internal interface ISender : IDisposable
{
    /// <summary>Sends one request: whether it was answered 200, and its Server-Timing header when <paramref name="timing"/>.</summary>
    ValueTask<(bool Ok, string? ServerTiming)> SendAsync(bool timing);
}

/// <summary>A sender over a shared client (HttpClient, gRPC): the same call from every caller.</summary>
internal sealed class SharedSender(Func<Task<(bool Ok, string? ServerTiming)>> send) : ISender
{
    public ValueTask<(bool Ok, string? ServerTiming)> SendAsync(bool timing) => new(send());

    public void Dispose()
    {
    }
}
