using System.Globalization;

namespace Platform.OnnxModels;

/// <summary>Options for <see cref="MlpClassifier"/>.</summary>
public sealed record MlpClassifierOptions
{
    /// <summary>Number of input features F (input shape [batch, F]).</summary>
    public int InputFeatures { get; init; } = 16;

    /// <summary>Widths of the hidden layers, each followed by Relu.</summary>
    public IReadOnlyList<int> HiddenSizes { get; init; } = [32, 32];

    /// <summary>Number of classes C (output shape [batch, C]).</summary>
    public int Classes { get; init; } = 4;

    /// <summary>Seed of the deterministic weight initialisation.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Emit Gemm nodes (true) or MatMul + Add (false); the maths is identical.</summary>
    public bool UseGemm { get; init; } = true;

    /// <summary>Graph input name.</summary>
    public string InputName { get; init; } = "input";

    /// <summary>Graph output name (softmax probabilities).</summary>
    public string OutputName { get; init; } = "probabilities";

    /// <summary>Symbolic name of the dynamic batch dimension.</summary>
    public string BatchDimension { get; init; } = "batch";
}

/// <summary>A fully connected layer: y = x · W + b with W stored row-major as [Inputs, Outputs].</summary>
/// <param name="Inputs">Input width.</param>
/// <param name="Outputs">Output width.</param>
/// <param name="Weights">Row-major [Inputs, Outputs] weights.</param>
/// <param name="Bias">[Outputs] bias.</param>
public sealed record DenseLayer(int Inputs, int Outputs, float[] Weights, float[] Bias);

/// <summary>
/// A seeded multi-layer perceptron classifier: input [batch, F] → (Gemm → Relu)* → Gemm → Softmax →
/// probabilities [batch, C]. <see cref="Predict"/> computes the same function in plain C# (double accumulation)
/// so tests compare ONNX Runtime against an independent implementation.
/// </summary>
public sealed class MlpClassifier
{
    private MlpClassifier(MlpClassifierOptions options, IReadOnlyList<DenseLayer> layers)
    {
        Options = options;
        Layers = layers;
    }

    /// <summary>The options the model was generated from.</summary>
    public MlpClassifierOptions Options { get; }

    /// <summary>Layers from input to output; the last one produces the logits.</summary>
    public IReadOnlyList<DenseLayer> Layers { get; }

    /// <summary>Total number of weights and biases.</summary>
    public long ParameterCount => Layers.Sum(l => (long)l.Weights.Length + l.Bias.Length);

    /// <summary>Floating-point operations per sample: 2·in·out per layer for the multiply-adds, plus the bias adds.</summary>
    public long FlopsPerSample => Layers.Sum(l => 2L * l.Inputs * l.Outputs + l.Outputs);

    /// <summary>Generates the weights (Glorot-uniform, small uniform biases) from the seed.</summary>
    public static MlpClassifier Create(MlpClassifierOptions? options = null)
    {
        options ??= new MlpClassifierOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.InputFeatures, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Classes, 1);
        if (options.HiddenSizes.Any(h => h < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(options), "Hidden sizes must be positive.");
        }

        var random = new DeterministicRandom(options.Seed);
        var widths = new List<int> { options.InputFeatures };
        widths.AddRange(options.HiddenSizes);
        widths.Add(options.Classes);
        var layers = new List<DenseLayer>();
        for (var i = 0; i + 1 < widths.Count; i++)
        {
            int inputs = widths[i], outputs = widths[i + 1];
            var limit = MathF.Sqrt(6f / (inputs + outputs));
            layers.Add(new DenseLayer(inputs, outputs, random.NextSymmetricArray(inputs * outputs, limit), random.NextSymmetricArray(outputs, 0.1f)));
        }
        return new MlpClassifier(options, layers);
    }

    /// <summary>The ONNX model.</summary>
    public GeneratedModel ToModel(string kind = "mlp")
    {
        var o = Options;
        var graph = new OnnxGraphBuilder("mlp_classifier");
        graph.AddInput(o.InputName, OnnxDataType.Float, o.BatchDimension, o.InputFeatures);
        var current = o.InputName;
        for (var i = 0; i < Layers.Count; i++)
        {
            var layer = Layers[i];
            var weights = $"layer{i}.weight";
            var bias = $"layer{i}.bias";
            graph.AddInitializer(weights, layer.Weights, layer.Inputs, layer.Outputs);
            graph.AddInitializer(bias, layer.Bias, layer.Outputs);
            current = o.UseGemm
                ? graph.Op("Gemm", [current, weights, bias])
                : graph.Op("Add", [graph.Op("MatMul", [current, weights]), bias]);
            if (i + 1 < Layers.Count)
            {
                current = graph.Op("Relu", [current]);
            }
        }
        graph.AddNode("Softmax", [current], [o.OutputName], OnnxAttribute.Int("axis", -1));
        graph.AddOutput(o.OutputName, OnnxDataType.Float, o.BatchDimension, o.Classes);

        var widths = string.Join("→", Layers.Select(l => l.Inputs.ToString(CultureInfo.InvariantCulture)).Append(o.Classes.ToString(CultureInfo.InvariantCulture)));
        var description = $"MLP classifier {widths} (Relu, softmax); input '{o.InputName}' float[{o.BatchDimension},{o.InputFeatures}] → " +
                          $"'{o.OutputName}' float[{o.BatchDimension},{o.Classes}]; seed {o.Seed}";
        var bytes = graph.ToBytes(description, new Dictionary<string, string>
        {
            ["platform.kind"] = kind,
            ["platform.seed"] = o.Seed.ToString(CultureInfo.InvariantCulture),
        });
        return new GeneratedModel(kind, bytes, ParameterCount, FlopsPerSample, description);
    }

    /// <summary>Reference forward pass: probabilities [batch, C] for input [batch, F], computed in double.</summary>
    public float[] Predict(ReadOnlySpan<float> input, int batch)
    {
        if (input.Length != batch * Options.InputFeatures)
        {
            throw new ArgumentException($"Expected {batch}×{Options.InputFeatures} values, got {input.Length}.", nameof(input));
        }
        var result = new float[batch * Options.Classes];
        var activations = new double[Options.InputFeatures];
        for (var b = 0; b < batch; b++)
        {
            for (var f = 0; f < activations.Length; f++)
            {
                activations[f] = input[b * Options.InputFeatures + f];
            }
            var current = activations;
            for (var l = 0; l < Layers.Count; l++)
            {
                var layer = Layers[l];
                var next = new double[layer.Outputs];
                for (var o = 0; o < layer.Outputs; o++)
                {
                    double sum = layer.Bias[o];
                    for (var i = 0; i < layer.Inputs; i++)
                    {
                        sum += current[i] * layer.Weights[i * layer.Outputs + o];
                    }
                    next[o] = l + 1 < Layers.Count ? Math.Max(0, sum) : sum;
                }
                current = next;
            }
            var max = current.Max();
            var total = 0.0;
            for (var c = 0; c < current.Length; c++)
            {
                current[c] = Math.Exp(current[c] - max);
                total += current[c];
            }
            for (var c = 0; c < current.Length; c++)
            {
                result[b * Options.Classes + c] = (float)(current[c] / total);
            }
        }
        return result;
    }
}

/// <summary>
/// The benchmark preset: an MLP 512 → 2048 → 1536 → 512 → 16, about 5.0 M parameters and 10 MFLOP per sample,
/// large enough that batching pays off and small enough to run on a 2-core CI machine.
/// </summary>
public static class BenchmarkModel
{
    /// <summary>Input features of the benchmark model.</summary>
    public const int InputFeatures = 512;

    /// <summary>Hidden layer widths of the benchmark model.</summary>
    public static readonly IReadOnlyList<int> HiddenSizes = [2048, 1536, 512];

    /// <summary>Output classes of the benchmark model.</summary>
    public const int Classes = 16;

    /// <summary>Options of the benchmark MLP for a seed.</summary>
    public static MlpClassifierOptions Options(ulong seed = 1) => new()
    {
        InputFeatures = InputFeatures,
        HiddenSizes = HiddenSizes,
        Classes = Classes,
        Seed = seed,
    };

    /// <summary>Generates the benchmark model.</summary>
    public static MlpClassifier Create(ulong seed = 1) => MlpClassifier.Create(Options(seed));
}
