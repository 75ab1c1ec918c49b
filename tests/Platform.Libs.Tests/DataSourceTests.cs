using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Platform.Data;

namespace Platform.Libs.Tests;

public sealed class DataSourceTests(ServersFixture servers)
{
    private static IHost Build(string connectionString, string? maxPoolSize)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            DisableDefaults = true, EnvironmentName = "Testing", ApplicationName = "pool-test-" + Guid.NewGuid().ToString("N")[..8],
        });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:platformdb"] = connectionString,
            [DataServiceCollectionExtensions.MaxPoolSizeKey] = maxPoolSize,
        });
        builder.Services.AddLogging();
        builder.AddPlatformDataSource();
        return builder.Build();
    }

    [Fact]
    public async Task MaxPoolSize_BoundsTheConnectionsTheProcessOpens()
    {
        var ct = TestContext.Current.CancellationToken;
        // The fixture's databases turn pooling off; Timeout=1: a caller beyond the bound waits a second for a free
        // connection, then fails in the pool (the server never sees a third connection).
        using var host = Build(await servers.CreateDatabaseAsync(ct) + ";Pooling=true;Timeout=1", "2");
        var dataSource = host.Services.GetRequiredService<NpgsqlDataSource>();
        var applicationName = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString).ApplicationName!;

        await using var first = await dataSource.OpenConnectionAsync(ct);
        await using var second = await dataSource.OpenConnectionAsync(ct);
        var exhausted = await Assert.ThrowsAsync<NpgsqlException>(async () => await dataSource.OpenConnectionAsync(ct));
        Assert.Contains("pool", exhausted.Message, StringComparison.OrdinalIgnoreCase);

        await using (var count = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", first))
        {
            count.Parameters.AddWithValue(applicationName);
            Assert.Equal(2L, (long)(await count.ExecuteScalarAsync(ct))!);
        }

        // A returned connection serves the next caller.
        await second.DisposeAsync();
        await using var third = await dataSource.OpenConnectionAsync(ct);
        Assert.Equal(System.Data.ConnectionState.Open, third.State);
    }

    [Fact]
    public async Task WithoutMaxPoolSize_NpgsqlsDefaultApplies()
    {
        using var host = Build(await servers.CreateDatabaseAsync(TestContext.Current.CancellationToken), null);

        var dataSource = host.Services.GetRequiredService<NpgsqlDataSource>();

        Assert.Equal(new NpgsqlConnectionStringBuilder().MaxPoolSize, new NpgsqlConnectionStringBuilder(dataSource.ConnectionString).MaxPoolSize);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-3")]
    [InlineData("ten")]
    public void InvalidMaxPoolSize_FailsNamingTheSetting(string value)
    {
        using var host = Build("Host=127.0.0.1;Port=1;Username=postgres;Password=x;Database=platformdb", value);

        var ex = Assert.Throws<InvalidOperationException>(() => host.Services.GetRequiredService<NpgsqlDataSource>());

        Assert.Contains(DataServiceCollectionExtensions.MaxPoolSizeKey, ex.Message, StringComparison.Ordinal);
        Assert.Contains(value, ex.Message, StringComparison.Ordinal);
    }
}
