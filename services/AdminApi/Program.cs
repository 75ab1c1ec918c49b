using Platform.Data;
using Platform.ObjectStore;
using Platform.Redis;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddPlatformDataSource();
// Applied in the background at start; the "migrations" check keeps /health unready until the schema is current.
builder.AddPlatformMigrations(typeof(Program).Assembly, "Platform.AdminApi.Migrations.");
builder.AddPlatformRedis();
builder.AddPlatformObjectStore();
builder.AddPlatformObjectStoreBucketInitializer();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapServiceInfo("admin-api");

app.Run();
