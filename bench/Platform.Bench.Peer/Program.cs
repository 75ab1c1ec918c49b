// A hand-rolled KServe v2 endpoint over ONNX Runtime: the peer the serving benchmark measures Platform against.
//   dotnet Platform.Bench.Peer.dll --model <path.onnx> --urls http://127.0.0.1:<port> [--intra-op-threads N] [--exit-with-stdin true]
// One FP32 input, one output: the shape of the benchmark's models. JSON or the binary tensor extension in and out.
using System.Buffers.Binary;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;

var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders();
var path = builder.Configuration["model"] ?? throw new ArgumentException("--model <path.onnx> is required");
// ONNX Runtime's defaults unless told otherwise (a spinning pool of a thread per core); --intra-op-threads 1 is the tuned
// alternative, where concurrent requests rather than one run's threads use the cores.
using var sessionOptions = new Microsoft.ML.OnnxRuntime.SessionOptions();
if (builder.Configuration["intra-op-threads"] is { } threads)
{
    sessionOptions.IntraOpNumThreads = int.Parse(threads, System.Globalization.CultureInfo.InvariantCulture);
}

using var session = new InferenceSession(path, sessionOptions);
var input = session.InputMetadata.Single();
var output = session.OutputNames.Single();
var features = input.Value.Dimensions[^1];

var app = builder.Build();
app.MapGet("/v2/health/ready", () => Results.Ok());
app.MapPost("/v2/models/{name}/infer", async (HttpContext context) =>
{
    using var body = new MemoryStream();
    await context.Request.Body.CopyToAsync(body, context.RequestAborted);
    var bytes = body.GetBuffer().AsMemory(0, (int)body.Length);
    var binary = context.Request.Headers.TryGetValue("Inference-Header-Content-Length", out var header);
    var jsonLength = binary ? int.Parse(header!, System.Globalization.CultureInfo.InvariantCulture) : bytes.Length;
    using var json = JsonDocument.Parse(bytes[..jsonLength]);
    var tensor = json.RootElement.GetProperty("inputs")[0];
    var rows = tensor.GetProperty("shape")[0].GetInt32();
    var values = new float[rows * features];
    if (binary)
    {
        var raw = bytes.Span[jsonLength..];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(raw[(i * 4)..]);
        }
    }
    else
    {
        var i = 0;
        foreach (var value in tensor.GetProperty("data").EnumerateArray())
        {
            values[i++] = value.GetSingle();
        }
    }

    using var inputValue = OrtValue.CreateTensorValueFromMemory(values, [rows, features]);
    using var results = session.Run(new RunOptions(), [input.Key], [inputValue], [output]);
    var result = results[0].GetTensorDataAsSpan<float>().ToArray();
    var shape = results[0].GetTensorTypeAndShape().Shape;
    if (!binary)
    {
        return Results.Json(new { model_name = context.Request.RouteValues["name"], outputs = new[] { new { name = output, datatype = "FP32", shape, data = result } } });
    }

    var head = JsonSerializer.SerializeToUtf8Bytes(new
    {
        model_name = context.Request.RouteValues["name"],
        outputs = new[] { new { name = output, datatype = "FP32", shape, parameters = new { binary_data_size = result.Length * 4 } } },
    });
    var payload = new byte[head.Length + result.Length * 4];
    head.CopyTo(payload, 0);
    for (var i = 0; i < result.Length; i++)
    {
        BinaryPrimitives.WriteSingleLittleEndian(payload.AsSpan(head.Length + i * 4), result[i]);
    }

    context.Response.Headers["Inference-Header-Content-Length"] = head.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
    return Results.Bytes(payload, "application/octet-stream");
});

if (app.Configuration["exit-with-stdin"] == "true")
{
    // The benchmark holds the write end of this process's stdin: it closes when the benchmark exits, even when it is killed
    // before it can stop the peer, and the peer then stops too instead of outliving it. A thread of its own, blocked in
    // read, costs the measured request path nothing.
    new Thread(() =>
    {
        using (var stdin = Console.OpenStandardInput())
        {
            stdin.CopyTo(Stream.Null);
        }
        app.Lifetime.StopApplication();
    }) { IsBackground = true, Name = "exit-with-stdin" }.Start();
}

app.Run();
