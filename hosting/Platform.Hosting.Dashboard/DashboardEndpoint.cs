using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace Platform.Hosting.Dashboard;

/// <summary>
/// The dashboard's address, fixed before anything starts: the orchestrator hands it to services as their
/// OTLP endpoint, so with port 0 a free port is chosen here rather than when Kestrel binds.
/// </summary>
public sealed class DashboardEndpoint
{
    /// <summary>Resolves the port (picking a free one for 0).</summary>
    public DashboardEndpoint(IOptions<DashboardOptions> options)
    {
        Address = IPAddress.Parse(options.Value.BindAddress);
        Port = options.Value.Port == 0 ? FreePort(Address) : options.Value.Port;
        var host = IPAddress.Any.Equals(Address) || IPAddress.IPv6Any.Equals(Address) ? "127.0.0.1" : Address.ToString();
        Url = string.Create(CultureInfo.InvariantCulture, $"http://{host}:{Port}");
    }

    /// <summary>Bound address.</summary>
    public IPAddress Address { get; }

    /// <summary>Port.</summary>
    public int Port { get; }

    /// <summary>Base URL (no trailing slash), also the OTLP endpoint.</summary>
    public string Url { get; }

    private static int FreePort(IPAddress address)
    {
        var listener = new TcpListener(address, 0);
        listener.Start();
        try
        {
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }
}
