namespace Platform.Hosting.Dashboard;

/// <summary>Dashboard settings (configuration section <c>Dashboard</c>, and <c>--dashboard-port</c>).</summary>
public sealed class DashboardOptions
{
    /// <summary>Port on 127.0.0.1; 0 picks a free one.</summary>
    public int Port { get; set; } = 18888;

    /// <summary>Address to bind; loopback unless deliberately changed.</summary>
    public string BindAddress { get; set; } = "127.0.0.1";
}
