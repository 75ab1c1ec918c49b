using Aspire.Hosting;
using Npgsql;
using Platform.Hosting;
using Platform.TestSupport;

namespace Platform.Hosting.Tests;

public sealed class PostgresPasswordTests
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AClusterCreatedWithOnePasswordTakesANewOneOnTheNextStart()
    {
        // Generated passwords live in user secrets, the cluster in .platform/: when the two part ways (secrets reset, a new
        // machine), the next start applies the current password instead of locking the platform out of its own data.
        var data = Directory.CreateTempSubdirectory("platform-pg-password-");
        File.SetUnixFileMode(data.FullName, (UnixFileMode)0b111_101_101);
        try
        {
            foreach (var password in new[] { "first-password-0001", "second-password-0002" })
            {
                await using var app = await PlatformApp.StartModelAsync(builder =>
                {
                    builder.Configuration["Platform:DataDirectory"] = data.FullName;
                    builder.AddNativePostgres("postgres", builder.AddParameter("postgres-password", password, secret: true).Resource).AddDatabase("keep");
                }, Ct);
                var connectionString = await app.GetConnectionStringAsync("keep", Ct);
                Assert.Contains($"Password={password}", connectionString, StringComparison.Ordinal);
                await using var dataSource = NpgsqlDataSource.Create(connectionString);
                await using var command = dataSource.CreateCommand("CREATE TABLE IF NOT EXISTS survives (n int); INSERT INTO survives VALUES (1); SELECT count(*) FROM survives");
                Assert.Equal(password.StartsWith("first", StringComparison.Ordinal) ? 1L : 2L, await command.ExecuteScalarAsync(Ct));
            }
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }
}
