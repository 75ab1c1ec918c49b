using Platform.Data;
using Platform.Redis;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddPlatformDataSource();
builder.AddPlatformRedis();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapServiceInfo("context-enrichment");

app.Run();
