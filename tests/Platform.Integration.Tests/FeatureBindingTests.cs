using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using Platform.Inference.Protocol;
using Platform.OnnxModels;
using Platform.OnnxRuntime;
using Platform.TestSupport;

namespace Platform.Integration.Tests;

/// <summary>
/// Feature bindings end to end: declared in AdminApi's registry, features in ContextEnrichment (Postgres + Redis),
/// inputs filled by InferenceApi, run by the ModelWorkers, answers compared with ONNX Runtime run in-process on the
/// inputs the platform should have built.
/// </summary>
public sealed class FeatureBindingTests(PlatformFixture fixture, OrtFixture ort) : IDisposable
{
    private const int MlpFeatures = 16;

    private readonly FeatureBindingClient _client = new(fixture);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => _client.Dispose();

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 13)];

    private static InferTensor Fp32(string name, long[] shape, float[] values) =>
        new(name, DataType.Fp32, shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    private static InferTensor Int64(string name, long[] shape, long[] values) =>
        new(name, DataType.Int64, shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    private static InferTensor Fp64(string name, long[] shape, double[] values) =>
        new(name, DataType.Fp64, shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    private static float[] Repeat(float[] row, int rows) => [.. Enumerable.Repeat(row, rows).SelectMany(r => r)];

    private static float[] MlpRow(int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, MlpFeatures).Select(_ => (float)(random.NextDouble() * 4 - 2))];
    }

    /// <summary>ONNX Runtime in-process on exactly the given inputs: the bytes of <paramref name="output"/>.</summary>
    private byte[] Reference(byte[] model, string output, params NamedTensor[] inputs)
    {
        using var session = ort.Ort.CreateSession(model);
        using var result = session.Run(inputs);
        return result[output].GetBytes().ToArray();
    }

    [Fact]
    public async Task EnrichmentFillsInputsCorrectlyEndToEnd()
    {
        var model = Unique("bind-mio");
        var onnx = MultiIoModel.Create().Bytes;
        var profileSet = Unique("profile");
        var idsSet = Unique("ids");
        var scaleSet = Unique("scale");
        var entity = Unique("user");
        var version = await _client.DeployAsync(model, onnx,
            [Fp32("x", [1, 4], [1, 2, 3, 4]), Int64("ids", [1, 3], [1, 2, 3]), Fp64("scale", [1, 1], [1])], Ct);

        // Values chosen to be exact in FP32 and to exercise sign, fractions and tiny magnitudes.
        float[] profile = [0.1f, -2.5f, 3.25f, 1e-3f];
        await _client.PutFeaturesAsync(profileSet, entity, profile, Ct);
        await _client.PutFeaturesAsync(idsSet, entity, [7, -2, 40], Ct);
        // No features in scaleSet for the entity: the default fills 'scale'.
        await _client.BindAsync(model, version, new object[]
        {
            new { input = "x", featureSet = profileSet },
            new { input = "ids", featureSet = idsSet },
            new { input = "scale", featureSet = scaleSet, @default = new[] { 2.5 } },
        }, Ct);

        using (var bindings = await _client.Admin.GetAsync($"/api/models/{model}/versions/{version}/bindings", Ct))
        {
            var json = JsonDocument.Parse(await bindings.Content.ReadAsStringAsync(Ct)).RootElement;
            Assert.Equal(3, json.GetProperty("bindings").GetArrayLength());
            Assert.Equal(idsSet, json.GetProperty("bindings")[1].GetProperty("featureSet").GetString());
            Assert.Equal(2.5, json.GetProperty("bindings")[2].GetProperty("default")[0].GetDouble());
        }

        // The request carries no inputs at all: everything comes from the entity's features and the default.
        var result = await _client.InferBoundAsync(model, [], entity, Ct);
        Assert.True(result.Status == 200, result.ToString());
        var response = result.Response!;
        Assert.Equal(Reference(onnx, "y",
                new NamedTensor("x", TensorData.From(profile, 1, 4)),
                new NamedTensor("ids", TensorData.From(new long[] { 7, -2, 40 }, 1, 3)),
                new NamedTensor("scale", TensorData.From(new[] { 2.5 }, 1, 1))),
            response["y"].Data.ToArray());
        Assert.Equal([1L, 4], response["y"].Shape);
        Assert.Equal([45L], MemoryMarshal.Cast<byte, long>(response["id_sum"].Data.Span).ToArray());
        Assert.Equal([6.25], MemoryMarshal.Cast<byte, double>(response["scale_squared"].Data.Span).ToArray());
        Assert.Contains("enrich;dur=", string.Join(",", result.Headers.GetValues("Server-Timing")), StringComparison.Ordinal);

        // Three rows of one entity: the request supplies 'scale' per row (it wins over the default) and the features
        // repeat on every row.
        double[] scales = [1, -0.5, 3];
        result = await _client.InferAsync(model, [Fp64("scale", [3, 1], scales)], entity, Ct);
        Assert.True(result.Status == 200, result.ToString());
        Assert.Equal(Reference(onnx, "y",
                new NamedTensor("x", TensorData.From(Repeat(profile, 3), 3, 4)),
                new NamedTensor("ids", TensorData.From(new long[] { 7, -2, 40, 7, -2, 40, 7, -2, 40 }, 3, 3)),
                new NamedTensor("scale", TensorData.From(scales, 3, 1))),
            result.Response!["y"].Data.ToArray());
        Assert.Equal([1.0, 0.25, 9.0], MemoryMarshal.Cast<byte, double>(result.Response["scale_squared"].Data.Span).ToArray());

        // The outcome counter, per model and feature set, on InferenceApi's Prometheus endpoint (labels sorted by name).
        using (var inference = fixture.App.CreateHttpClient("inference-api"))
        {
            var metrics = await inference.GetStringAsync("/metrics", Ct);
            const string Inputs = "platform_inference_api_enrichment_inputs_total";
            Assert.Equal(2, PrometheusText.Value(metrics, Inputs, ("feature_set", profileSet), ("model", model), ("outcome", "filled")));
            Assert.Equal(1, PrometheusText.Value(metrics, Inputs, ("feature_set", scaleSet), ("model", model), ("outcome", "default")));
            Assert.Equal(1, PrometheusText.Value(metrics, Inputs, ("feature_set", scaleSet), ("model", model), ("outcome", "supplied")));
        }

        // A feature write is seen by the next inference (the feature cache is invalidated on write).
        float[] updated = [-1f, 0f, 0.5f, 8f];
        await _client.PutFeaturesAsync(profileSet, entity, updated, Ct);
        result = await _client.InferAsync(model, [], entity, Ct);
        Assert.True(result.Status == 200, result.ToString());
        Assert.Equal(Reference(onnx, "y",
                new NamedTensor("x", TensorData.From(updated, 1, 4)),
                new NamedTensor("ids", TensorData.From(new long[] { 7, -2, 40 }, 1, 3)),
                new NamedTensor("scale", TensorData.From(new[] { 2.5 }, 1, 1))),
            result.Response!["y"].Data.ToArray());
    }

    [Fact]
    public async Task TheDefaultFillsTheInputUntilTheEntityHasFeatures()
    {
        var model = Unique("bind-mlp");
        var onnx = MlpClassifier.Create(new MlpClassifierOptions { Seed = 31 }).ToModel().Bytes;
        var set = Unique("mlp-feat");
        var entity = Unique("cust");
        var version = await _client.DeployAsync(model, onnx, [Fp32("input", [1, MlpFeatures], MlpRow(0))], Ct);
        var defaults = MlpRow(1);
        await _client.BindAsync(model, version, new[] { new { input = "input", featureSet = set, @default = defaults.Select(v => (double)v).ToArray() } }, Ct);

        var result = await _client.InferBoundAsync(model, [], entity, Ct);
        Assert.True(result.Status == 200, result.ToString());
        var fromDefault = Reference(onnx, "probabilities", new NamedTensor("input", TensorData.From(defaults, 1, MlpFeatures)));
        Assert.Equal(fromDefault, result.Response!["probabilities"].Data.ToArray());

        var features = MlpRow(2);
        await _client.PutFeaturesAsync(set, entity, features, Ct);
        result = await _client.InferAsync(model, [], entity, Ct);
        Assert.True(result.Status == 200, result.ToString());
        var fromFeatures = Reference(onnx, "probabilities", new NamedTensor("input", TensorData.From(features, 1, MlpFeatures)));
        Assert.NotEqual(fromDefault, fromFeatures);
        Assert.Equal(fromFeatures, result.Response!["probabilities"].Data.ToArray());

        // The request's own input wins over the entity's features.
        var own = MlpRow(3);
        result = await _client.InferAsync(model, [Fp32("input", [1, MlpFeatures], own)], entity, Ct);
        Assert.True(result.Status == 200, result.ToString());
        Assert.Equal(Reference(onnx, "probabilities", new NamedTensor("input", TensorData.From(own, 1, MlpFeatures))),
            result.Response!["probabilities"].Data.ToArray());
    }

    [Fact]
    public async Task MissingFeaturesWithoutADefaultAre400NamingEveryMissingSet()
    {
        var model = Unique("bind-miss");
        var onnx = MultiIoModel.Create().Bytes;
        var profileSet = Unique("profile");
        var idsSet = Unique("ids");
        var entity = Unique("nobody");
        var version = await _client.DeployAsync(model, onnx,
            [Fp32("x", [1, 4], [1, 2, 3, 4]), Int64("ids", [1, 3], [1, 2, 3]), Fp64("scale", [1, 1], [1])], Ct);
        await _client.BindAsync(model, version, new[] { new { input = "x", featureSet = profileSet }, new { input = "ids", featureSet = idsSet } }, Ct);
        InferTensor[] scale = [Fp64("scale", [1, 1], [1])];

        var result = await _client.InferBoundAsync(model, scale, entity, Ct);
        Assert.Equal(400, result.Status);
        Assert.Contains($"input 'x': entity '{entity}' has no features in set '{profileSet}'", result.Error, StringComparison.Ordinal);
        Assert.Contains($"input 'ids': entity '{entity}' has no features in set '{idsSet}'", result.Error, StringComparison.Ordinal);

        // One set present, the other still missing: only the missing one is named.
        await _client.PutFeaturesAsync(profileSet, entity, [1, 2, 3, 4], Ct);
        result = await _client.InferAsync(model, scale, entity, Ct);
        Assert.Equal(400, result.Status);
        Assert.DoesNotContain(profileSet, result.Error, StringComparison.Ordinal);
        Assert.Contains($"input 'ids': entity '{entity}' has no features in set '{idsSet}'", result.Error, StringComparison.Ordinal);

        // A vector of the wrong length names input, set and both lengths; a non-integer for INT64 names the value.
        await _client.PutFeaturesAsync(idsSet, entity, [1, 2], Ct);
        result = await _client.InferAsync(model, scale, entity, Ct);
        Assert.Equal(400, result.Status);
        Assert.Equal($"input 'ids': the vector of entity '{entity}' in set '{idsSet}' has 2 values but input 'ids' [-1,3] needs 3 per row", result.Error);
        await _client.PutFeaturesAsync(idsSet, entity, [1, 2.5f, 3], Ct);
        result = await _client.InferAsync(model, scale, entity, Ct);
        Assert.Equal(400, result.Status);
        Assert.Equal($"input 'ids': the vector of entity '{entity}' in set '{idsSet}' has value 2.5 at index 1 that is not an integer, which INT64 needs", result.Error);

        // Without parameters.entity_id bindings do nothing: the validator's usual 400.
        result = await _client.InferAsync(model, scale, null, Ct);
        Assert.Equal(400, result.Status);
        Assert.StartsWith("missing input 'x'", result.Error, StringComparison.Ordinal);

        // An entity id the feature store could never hold is the client's mistake.
        result = await _client.InferAsync(model, scale, "has space", Ct);
        Assert.Equal(400, result.Status);
        Assert.StartsWith("parameters.entity_id: 'has space' must be 1-128 characters", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FeaturesAreConvertedToTheBoundInputsDatatypes()
    {
        var model = Unique("bind-types");
        var onnx = AllTypesModel.Create().Bytes;
        // Every input of the identity model, one element each, so only the bound ones differ.
        var probe = AllTypesModel.Types.Select(t => Probe(AllTypesModel.InputName(t.Suffix), t.Type)).ToArray();
        var version = await _client.DeployAsync(model, onnx, probe, Ct);
        var entity = Unique("conv");
        var set = Unique("conv-set");
        float[] values = [0, 1, 255, 7];
        await _client.PutFeaturesAsync(set, entity, values, Ct);
        string[] bound = ["uint8", "int64", "float16", "double", "uint16"];
        await _client.BindAsync(model, version, bound.Select(s => new { input = AllTypesModel.InputName(s), featureSet = set }).ToArray(), Ct);

        var rest = probe.Where(p => !bound.Any(b => p.Name == AllTypesModel.InputName(b))).ToArray();
        var result = await _client.InferBoundAsync(model, rest, entity, Ct);
        Assert.True(result.Status == 200, result.ToString());
        var outputs = result.Response!;
        Assert.Equal(new byte[] { 0, 1, 255, 7 }, outputs[AllTypesModel.OutputName("uint8")].Data.ToArray());
        Assert.Equal([0L, 1, 255, 7], MemoryMarshal.Cast<byte, long>(outputs[AllTypesModel.OutputName("int64")].Data.Span).ToArray());
        Assert.Equal([(Half)0, (Half)1, (Half)255, (Half)7], MemoryMarshal.Cast<byte, Half>(outputs[AllTypesModel.OutputName("float16")].Data.Span).ToArray());
        Assert.Equal([0.0, 1, 255, 7], MemoryMarshal.Cast<byte, double>(outputs[AllTypesModel.OutputName("double")].Data.Span).ToArray());
        Assert.Equal([(ushort)0, 1, 255, 7], MemoryMarshal.Cast<byte, ushort>(outputs[AllTypesModel.OutputName("uint16")].Data.Span).ToArray());
        Assert.Equal([1L, 4], outputs[AllTypesModel.OutputName("uint8")].Shape);
    }

    /// <summary>A [1,1] zero (or "a") of the identity model's input for <paramref name="type"/>.</summary>
    private static InferTensor Probe(string name, OnnxDataType type)
    {
        Assert.True(DataTypes.TryFromOnnxElementType((int)type, out var dataType), $"{type}");
        return dataType == DataType.Bytes
            ? new InferTensor(name, dataType, [1, 1], new byte[] { 1, 0, 0, 0, (byte)'a' })
            : new InferTensor(name, dataType, [1, 1], new byte[dataType.ElementSize()]);
    }

    [Fact]
    public async Task BindingValidationErrorsNameTheField()
    {
        var model = Unique("bind-valid");
        var onnx = AllTypesModel.Create().Bytes;
        using var content = new ByteArrayContent(onnx) { Headers = { ContentType = new("application/octet-stream") } };
        using var created = await _client.Admin.PostAsync($"/api/models/{model}/versions", content, Ct);
        Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync(Ct));
        var mlp = Unique("bind-valid-mlp");
        using var mlpContent = new ByteArrayContent(MlpClassifier.Create().ToModel().Bytes) { Headers = { ContentType = new("application/octet-stream") } };
        using var mlpCreated = await _client.Admin.PostAsync($"/api/models/{mlp}/versions", mlpContent, Ct);
        Assert.True(mlpCreated.IsSuccessStatusCode, await mlpCreated.Content.ReadAsStringAsync(Ct));

        (string Model, string Body, int Status, string Message)[] cases =
        [
            (model, """{"bindings":[{"input":"foo","featureSet":"s"}]}""", 400, $"bindings[0].input: model '{model}' version 1 has no input 'foo'"),
            (model, """{"bindings":[{"input":"in_bool","featureSet":"s"}]}""", 400, "bindings[0].input: input 'in_bool' is BOOL; only numeric inputs"),
            (model, """{"bindings":[{"input":"in_float","featureSet":"s"},{"input":"in_string","featureSet":"s"}]}""", 400, "bindings[1].input: input 'in_string' is BYTES; only numeric inputs"),
            (model, """{"bindings":[{"input":"in_float","featureSet":"s"},{"input":"in_float","featureSet":"t"}]}""", 400, "bindings[1].input: input 'in_float' is bound more than once"),
            (model, """{"bindings":[{"input":"in_float","featureSet":"bad set"}]}""", 400, "bindings[0].featureSet: 'bad set' must be 1-128 characters"),
            (model, """{"bindings":[{"input":"in_float"}]}""", 400, "bindings[0].featureSet: is required"),
            (model, """{"bindings":[{"featureSet":"s"}]}""", 400, "bindings[0].input: is required"),
            (model, """{"bindings":[{"input":"in_float","featureSet":"s","weight":2}]}""", 400, "bindings[0].weight: unknown field"),
            (model, """{"bindings":[{"input":"in_uint8","featureSet":"s","default":[1,256]}]}""", 400, "bindings[0].default[1]: is out of the range of UINT8"),
            (model, """{"bindings":[{"input":"in_int64","featureSet":"s","default":[1.5]}]}""", 400, "bindings[0].default[0]: is not an integer, which INT64 needs"),
            (model, """{"bindings":[{"input":"in_float","featureSet":"s","default":[1,"x"]}]}""", 400, "bindings[0].default[1]: must be a finite number"),
            (model, """{"bindings":[{"input":"in_float","featureSet":"s","default":[]}]}""", 400, "bindings[0].default: must hold 1 to 65536 values (got 0)"),
            (mlp, """{"bindings":[{"input":"input","featureSet":"s","default":[1,2,3]}]}""", 400, "bindings[0].default: has 3 values but input 'input' [-1,16] needs 16 per row"),
            (model, """{"binding":[]}""", 400, "bindings: is required"),
            (model, """[1]""", 400, "body: expected a JSON object"),
            (model, """{"bindings":""", 400, "body: not valid JSON"),
        ];
        foreach (var (target, body, status, message) in cases)
        {
            using var response = await _client.Admin.PutAsync($"/api/models/{target}/versions/1/bindings",
                new StringContent(body, System.Text.Encoding.UTF8, "application/json"), Ct);
            var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("error").GetString();
            Assert.True(status == (int)response.StatusCode, $"{body}: {(int)response.StatusCode} {error}");
            Assert.True(error!.StartsWith(message, StringComparison.Ordinal), $"{body}: expected '{message}…', got '{error}'");
        }

        // Nothing invalid was stored; unknown versions and models are 404; an empty list clears the bindings.
        using (var get = await _client.Admin.GetAsync($"/api/models/{model}/versions/1/bindings", Ct))
        {
            Assert.Equal(0, JsonDocument.Parse(await get.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("bindings").GetArrayLength());
        }

        using (var missing = await _client.PutBindingsAsync(model, 9, new { bindings = Array.Empty<object>() }, Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            Assert.Contains($"version: model '{model}' has no version 9", await missing.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }

        await _client.BindAsync(model, 1, new[] { new { input = "in_float", featureSet = "s" } }, Ct);
        await _client.BindAsync(model, 1, Array.Empty<object>(), Ct);
        using (var cleared = await _client.Admin.GetAsync($"/api/models/{model}/versions/1", Ct))
        {
            Assert.Equal(0, JsonDocument.Parse(await cleared.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("featureBindings").GetArrayLength());
        }

        // Admin routes need the admin key like the rest of the registry.
        using var anonymous = fixture.App.CreateHttpClient("admin-api");
        using var unauthorized = await anonymous.GetAsync($"/api/models/{model}/versions/1/bindings", Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, unauthorized.StatusCode);
    }
}
