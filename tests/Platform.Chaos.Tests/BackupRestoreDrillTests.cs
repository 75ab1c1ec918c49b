using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Amazon.S3;
using Amazon.S3.Model;
using Npgsql;
using Platform.ObjectStore;
using Platform.OnnxModels;
using Platform.TestSupport;
using YamlDotNet.RepresentationModel;

namespace Platform.Chaos.Tests;

/// <summary>
/// The backup drill of docs/backup-restore.md at small scale: the production CronJob's own dump command
/// (manifests/components/postgres-backup/cronjob.yaml) against the running platform, the models bucket copied, both
/// restored into a fresh platform's servers, and the fresh platform then serves the restored tenants, keys, prices,
/// budgets, usage and models.
/// </summary>
public sealed class BackupRestoreDrillTests(ChaosFixture fixture)
{
    private const string Bucket = "models";
    private static readonly string[] Services = ["admin-api", "context-enrichment", "inference-api", "model-worker"];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TheCronJobsDumpAndTheBucketCopyRestoreIntoFreshServersThatServeEverything()
    {
        // Data of every kind on the source platform.
        var model = $"drill-{Guid.NewGuid():N}"[..14];
        await UploadAsync(fixture.Admin, model, ModelCatalog.Generate("mlp", new ModelRequest { Seed = 901 }).Bytes);
        using (var price = await fixture.Admin.PutAsJsonAsync($"/api/prices/{model}", new { per1kInferences = 1000, currency = "USD" }, Ct))
        {
            Assert.True(price.IsSuccessStatusCode, await price.Content.ReadAsStringAsync(Ct));
        }

        var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"drill-{Guid.NewGuid():N}"[..20], [model], cancellationToken: Ct);
        using (var budget = await fixture.Admin.PutAsJsonAsync($"/api/tenants/{tenant.Id}/budget", new { period = "monthly", limit = 50, currency = "USD" }, Ct))
        {
            Assert.True(budget.IsSuccessStatusCode, await budget.Content.ReadAsStringAsync(Ct));
        }

        using (var source = fixture.App.CreateHttpClient("inference-api").WithApiKey(tenant.Key))
        {
            await Waits.UntilAsync(async () => await InferAsync(source, model, "before-0") == HttpStatusCode.OK, TimeSpan.FromSeconds(90), $"{model} served on the source", Ct);
            for (var i = 1; i < 3; i++)
            {
                Assert.Equal(HttpStatusCode.OK, await InferAsync(source, model, $"before-{i}"));
            }
        }

        // The backup runs after the usage buffer has drained (the runbook's first step): 3 records, 3 USD.
        var sourceDb = await fixture.App.GetConnectionStringAsync("platformdb", Ct);
        await Waits.UntilAsync(async () => await UsageCountAsync(sourceDb, tenant.Id) == 3, TimeSpan.FromSeconds(60), "3 usage records in the source database", Ct);

        var backup = Directory.CreateTempSubdirectory("platform-backup-");
        try
        {
            // 1. The CronJob's dump container, as written in the manifest; only its volume path is this machine's.
            await RunCronJobDumpAsync(sourceDb, backup.FullName);
            var dump = Path.Combine(backup.FullName, "platformdb.dump");
            Assert.True(new FileInfo(dump).Length > 0, "the dump is empty");

            // 2. The models bucket (`mc mirror source/models backup/models`; the CronJob does not copy it: docs/backup-restore.md).
            var objects = Path.Combine(backup.FullName, Bucket);
            using (var store = S3ObjectStore.CreateClient(ObjectStoreConnection.Parse((await fixture.App.GetConnectionStringAsync("objectstore", Ct))!)))
            {
                await MirrorDownAsync(store, objects);
            }

            // 3. Fresh servers: a new platform whose services are stopped while its database and bucket are replaced.
            await using var target = await PlatformApp.StartAsync([$"--Parameters:admin-api-key={ChaosFixture.AdminKey}", "--Platform:DurableData=true"], cancellationToken: Ct);
            foreach (var service in Services)
            {
                for (var replica = target.Instances(service).Count - 1; replica >= 0; replica--)
                {
                    await target.StopAsync(service, replica, Ct);
                }
            }

            var targetDb = (await target.GetConnectionStringAsync("platformdb", Ct))!;
            await RunAsync("pg_restore", ["--clean", "--if-exists", "--no-owner", "--exit-on-error", "--dbname=platformdb", dump], LibPq(targetDb));
            using (var store = S3ObjectStore.CreateClient(ObjectStoreConnection.Parse((await target.GetConnectionStringAsync("objectstore", Ct))!)))
            {
                await MirrorUpAsync(store, objects);
            }

            foreach (var service in Services)
            {
                for (var replica = 0; replica < target.Instances(service).Count; replica++)
                {
                    await target.StartAsync(service, replica, Ct);
                }
            }

            await target.WaitForAllHealthyAsync(Ct);

            // The restored platform: the tenant's key and model access, the model (from the copied artifact), the price
            // (1 USD an inference), the budget (3 USD spent before, 1 now) and the usage.
            using var restored = target.CreateHttpClient("inference-api").WithApiKey(tenant.Key);
            await Waits.UntilAsync(async () => await InferAsync(restored, model, "after-0") == HttpStatusCode.OK, TimeSpan.FromSeconds(120), $"{model} served on the restored platform", Ct);
            using var admin = target.CreateHttpClient("admin-api");
            admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ChaosFixture.AdminKey);
            await Waits.UntilAsync(async () => await UsageCountAsync(targetDb, tenant.Id) == 4, TimeSpan.FromSeconds(60), "4 usage records in the restored database", Ct);
            var report = JsonDocument.Parse(await admin.GetStringAsync($"/api/tenants/{tenant.Id}/budget", Ct)).RootElement;
            Assert.Equal(50m, report.GetProperty("limit").GetDecimal());
            Assert.Equal(4m, report.GetProperty("spent").GetDecimal());
            var keys = JsonDocument.Parse(await admin.GetStringAsync($"/api/tenants/{tenant.Id}/keys", Ct)).RootElement.GetProperty("keys");
            Assert.Contains(keys.EnumerateArray(), k => k.GetProperty("id").GetGuid() == tenant.KeyId);
            using var otherModel = await restored.PostAsync($"/v2/models/{ChaosFixture.Model}/infer", Body("not-allowed"), Ct);
            Assert.Equal(HttpStatusCode.Forbidden, otherModel.StatusCode);
        }
        finally
        {
            backup.Delete(recursive: true);
        }
    }

    // The dump container of the CronJob: its command and its environment, with the Service name and Secret replaced by this
    // platform's address and password, and /backup by a local folder.
    private static async Task RunCronJobDumpAsync(string connectionString, string backupDirectory)
    {
        var manifest = Path.Combine(RepositoryRoot(), "manifests", "components", "postgres-backup", "cronjob.yaml");
        var yaml = new YamlStream();
        using (var reader = new StreamReader(manifest))
        {
            yaml.Load(reader);
        }

        var root = (YamlMappingNode)yaml.Documents[0].RootNode;
        var pod = (YamlMappingNode)Node(root, "spec", "jobTemplate", "spec", "template", "spec");
        var dump = ((YamlSequenceNode)pod.Children[new YamlScalarNode("initContainers")]).Children.Cast<YamlMappingNode>()
            .Single(c => c.Children[new YamlScalarNode("name")].ToString() == "dump");
        var command = ((YamlSequenceNode)dump.Children[new YamlScalarNode("command")]).Children.Select(c => c.ToString().Replace("/backup", backupDirectory, StringComparison.Ordinal)).ToList();
        var environment = LibPq(connectionString);
        foreach (var variable in ((YamlSequenceNode)dump.Children[new YamlScalarNode("env")]).Children.Cast<YamlMappingNode>())
        {
            var name = variable.Children[new YamlScalarNode("name")].ToString();
            if (variable.Children.TryGetValue(new YamlScalarNode("value"), out var value) && name is "PGUSER" or "PGDATABASE")
            {
                environment[name] = value.ToString();
            }
        }

        Assert.Equal("pg_dump", command[0]);
        await RunAsync(command[0], command[1..], environment);
    }

    private static YamlNode Node(YamlMappingNode node, params string[] keys) =>
        keys.Aggregate((YamlNode)node, (n, k) => ((YamlMappingNode)n).Children[new YamlScalarNode(k)]);

    private static Dictionary<string, string> LibPq(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        return new Dictionary<string, string>
        {
            ["PGHOST"] = builder.Host!,
            ["PGPORT"] = builder.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["PGUSER"] = builder.Username!,
            ["PGPASSWORD"] = builder.Password!,
            ["PGDATABASE"] = builder.Database!,
        };
    }

    private static async Task RunAsync(string file, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string> environment)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync(Ct);
        var error = process.StandardError.ReadToEndAsync(Ct);
        await process.WaitForExitAsync(Ct);
        Assert.True(process.ExitCode == 0, $"{file} {string.Join(' ', arguments)} exited {process.ExitCode}:\n{await output}\n{await error}");
    }

    private static async Task MirrorDownAsync(IAmazonS3 store, string directory)
    {
        var listing = await store.ListObjectsV2Async(new ListObjectsV2Request { BucketName = Bucket }, Ct);
        Assert.NotEmpty(listing.S3Objects ?? []);
        foreach (var entry in listing.S3Objects!)
        {
            var path = System.IO.Path.Combine(directory, entry.Key);
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
            using var response = await store.GetObjectAsync(Bucket, entry.Key, Ct);
            await using var file = File.Create(path);
            await response.ResponseStream.CopyToAsync(file, Ct);
        }
    }

    private static async Task MirrorUpAsync(IAmazonS3 store, string directory)
    {
        foreach (var path in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories))
        {
            var key = System.IO.Path.GetRelativePath(directory, path).Replace('\\', '/');
            await store.PutObjectAsync(new PutObjectRequest { BucketName = Bucket, Key = key, FilePath = path, UseChunkEncoding = false }, Ct);
        }
    }

    private static async Task<long> UsageCountAsync(string connectionString, Guid tenant)
    {
        try
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(Ct);
            await using var command = new NpgsqlCommand("SELECT count(*) FROM usage_records WHERE tenant_id = $1", connection);
            command.Parameters.AddWithValue(tenant);
            return (long)(await command.ExecuteScalarAsync(Ct))!;
        }
        catch (PostgresException)
        {
            return -1; // the table is not there yet
        }
    }

    private static async Task UploadAsync(HttpClient admin, string name, byte[] bytes)
    {
        using var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await admin.PostAsync($"/api/models/{name}/versions?activate=true", content, Ct);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync(Ct));
    }

    private static async Task<HttpStatusCode> InferAsync(HttpClient client, string model, string id)
    {
        using var response = await client.PostAsync($"/v2/models/{model}/infer", Body(id), Ct);
        return response.StatusCode;
    }

    private static JsonContent Body(string id) =>
        JsonContent.Create(new { id, inputs = new[] { new { name = "input", shape = new[] { 1, 16 }, datatype = "FP32", data = Enumerable.Range(0, 16).Select(i => i / 16f).ToArray() } } });

    private static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(System.IO.Path.Combine(directory.FullName, "Platform.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("Platform.sln not found above " + AppContext.BaseDirectory);
    }
}
