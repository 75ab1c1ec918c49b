using System.Buffers.Text;
using System.Diagnostics;
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
        (bool Ok, string? ServerTiming) response;
        while (!TryReadResponse(_buffer.AsSpan(0, filled), timing, out response))
        {
            filled += await ReceiveAsync(socket, filled);
        }

        return response;
    }

    /// <summary>
    /// Whether <paramref name="received"/> holds a whole response (head and body, by Content-Length or chunks); if so,
    /// whether it was a 200 and, when <paramref name="timing"/>, its Server-Timing header.
    /// </summary>
    /// <exception cref="FormatException">Not an HTTP/1.1 response this client can read.</exception>
    private static bool TryReadResponse(ReadOnlySpan<byte> received, bool timing, out (bool Ok, string? ServerTiming) response)
    {
        response = default;
        var headEnd = received.IndexOf(HeaderEnd);
        if (headEnd < 0)
        {
            return false;
        }

        var bodyStart = headEnd + HeaderEnd.Length;
        var (status, contentLength, chunked, _) = ParseHead(received[..headEnd], timing: false);
        if (!chunked)
        {
            if (received.Length < bodyStart + contentLength)
            {
                return false;
            }
        }
        else
        {
            // Chunks: "<hex size>\r\n<data>\r\n", ending with a zero-size chunk and an empty trailer line.
            var position = bodyStart;
            while (true)
            {
                var lineEnd = received[position..].IndexOf("\r\n"u8);
                if (lineEnd < 0)
                {
                    return false;
                }

                var sizeText = received.Slice(position, lineEnd);
                var extension = sizeText.IndexOf((byte)';');
                if (!Utf8Parser.TryParse(extension < 0 ? sizeText : sizeText[..extension], out int size, out _, 'x'))
                {
                    throw new FormatException("bad chunk size");
                }

                position += lineEnd + 2 + size + 2;
                if (received.Length < position)
                {
                    return false;
                }

                if (size == 0)
                {
                    break;
                }
            }
        }

        // Server-Timing only once the response is whole: the one string this client allocates, every 8th request.
        response = (status == 200, timing ? ParseHead(received[..headEnd], timing: true).ServerTiming : null);
        return true;
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

    /// <summary>The connections behind <paramref name="senders"/> when every one is a lean connection's; otherwise null.</summary>
    public static IReadOnlyList<LeanHttpConnection>? Of(IReadOnlyList<ISender> senders)
    {
        var connections = new List<LeanHttpConnection>(senders.Count);
        foreach (var sender in senders)
        {
            if (sender is not Sender lean)
            {
                return null;
            }

            connections.Add(lean.Connection);
        }

        return connections;
    }

    /// <summary>
    /// Drives <paramref name="connections"/> (one request in flight on each) from the calling thread for
    /// <paramref name="duration"/>, as wrk does: one poll(2) over every socket, and each readable one is read and, once its
    /// response is whole, sent the next request. No thread-pool hand-off per response, so the client's CPU per request
    /// does not grow when a server answers in bursts (one poll wakes for many answers) — with one async caller per
    /// connection it did: 0.040 CPU ms per request against Platform, 0.016 against the peer. Every 8th response of a
    /// connection has its Server-Timing read. Requests still unanswered 30 s after the end count as errors.
    /// </summary>
    public static LoadResult Drive(IReadOnlyList<LeanHttpConnection> connections, TimeSpan duration)
    {
        var count = connections.Count;
        var latencies = new List<double>(count * 4096);
        var timings = new List<(double ClientMs, string Header)>(4096);
        var errors = 0;
        var sentAt = new long[count];
        var filled = new int[count];
        var requests = new int[count];
        var index = new Dictionary<Socket, int>(count, ReferenceEqualityComparer.Instance);
        var ready = new List<Socket>(count);
        var started = Stopwatch.GetTimestamp();

        // Sends connection i's next request, reconnecting first if it has no socket; false when that failed.
        bool Send(int i)
        {
            var connection = connections[i];
            try
            {
                // The connections come fresh (no socket yet), so every socket is polled from its connect on.
                if (connection._socket is null)
                {
                    connection._socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                    connection._socket.Connect(connection._endpoint);
                    index[connection._socket] = i;
                }

                filled[i] = 0;
                sentAt[i] = Stopwatch.GetTimestamp();
                // Blocking, but a request of a few hundred bytes fits the socket's send buffer: it returns at once.
                for (var sent = 0; sent < connection._request.Length;)
                {
                    sent += connection._socket.Send(connection._request.AsSpan(sent), SocketFlags.None);
                }

                return true;
            }
            catch (SocketException)
            {
                Drop(i);
                return false;
            }
        }

        void Drop(int i)
        {
            if (connections[i]._socket is { } socket)
            {
                index.Remove(socket);
                socket.Dispose();
                connections[i]._socket = null;
            }
        }

        // Connection i's next request, if the step has not ended; a send that fails is an error (with the time it took,
        // as the async path counts it) and is tried again.
        void Next(int i)
        {
            while (Stopwatch.GetElapsedTime(started) < duration)
            {
                var attempt = Stopwatch.GetTimestamp();
                if (Send(i))
                {
                    return;
                }

                errors++;
                latencies.Add(Stopwatch.GetElapsedTime(attempt).TotalMilliseconds);
            }
        }

        for (var i = 0; i < count; i++)
        {
            Next(i);
        }

        while (index.Count > 0 && Stopwatch.GetElapsedTime(started) < duration + TimeSpan.FromSeconds(30))
        {
            ready.Clear();
            ready.AddRange(index.Keys);
            Socket.Select(ready, null, null, 1_000_000);
            foreach (var socket in ready)
            {
                var i = index[socket];
                var connection = connections[i];
                bool whole;
                (bool Ok, string? ServerTiming) response = default;
                try
                {
                    if (filled[i] == connection._buffer.Length)
                    {
                        Array.Resize(ref connection._buffer, connection._buffer.Length * 2);
                    }

                    // Readable: a blocking receive returns what has arrived without waiting (0: the server closed it).
                    var received = socket.Receive(connection._buffer.AsSpan(filled[i]), SocketFlags.None);
                    if (received == 0)
                    {
                        throw new IOException("the server closed the connection");
                    }

                    filled[i] += received;
                    whole = TryReadResponse(connection._buffer.AsSpan(0, filled[i]), requests[i] % 8 == 0, out response);
                }
                catch (Exception e) when (e is SocketException or IOException or FormatException)
                {
                    // A reset or closed connection is an error of this request; the next one reconnects.
                    Drop(i);
                    whole = true;
                }

                if (!whole)
                {
                    continue;
                }

                var ms = Stopwatch.GetElapsedTime(sentAt[i]).TotalMilliseconds;
                latencies.Add(ms);
                if (response.ServerTiming is { } header)
                {
                    timings.Add((ms, header));
                }

                if (!response.Ok)
                {
                    errors++;
                }

                requests[i]++;
                if (connection._socket is { } open && Stopwatch.GetElapsedTime(started) >= duration)
                {
                    index.Remove(open);
                    continue;
                }

                Next(i);
            }
        }

        errors += index.Count;
        return new LoadResult(latencies, timings, errors, Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    private sealed class Sender(LeanHttpConnection connection) : ISender
    {
        public LeanHttpConnection Connection => connection;

        public ValueTask<(bool Ok, string? ServerTiming)> SendAsync(bool timing) => connection.SendAsync(timing);

        public void Dispose() => connection.Dispose();
    }
}

/// <summary>What a load step measured: every request's latency (ms), the sampled Server-Timing headers, errors, seconds.</summary>
internal sealed record LoadResult(List<double> Latencies, List<(double ClientMs, string Header)> Timings, int Errors, double ElapsedSeconds);

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
