using Platform.Data;
using Platform.Redis;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddPlatformRedis();
builder.AddPlatformDataSource();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapServiceInfo("inference-api");

app.Run();
