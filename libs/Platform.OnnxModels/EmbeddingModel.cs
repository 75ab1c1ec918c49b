using System.Globalization;

namespace Platform.OnnxModels;

/// <summary>Options for <see cref="EmbeddingModel"/>.</summary>
public sealed record EmbeddingModelOptions
{
    /// <summary>Number of token ids (rows of the embedding table); ids must be in [0, VocabularySize).</summary>
    public int VocabularySize { get; init; } = 1000;

    /// <summary>Width E of the token embedding table.</summary>
    public int TokenDimension { get; init; } = 64;

    /// <summary>Width D of the output sentence embedding (e.g. 384).</summary>
    public int OutputDimension { get; init; } = 384;

    /// <summary>Seed of the deterministic weight initialisation.</summary>
    public ulong Seed { get; init; } = 1;
}

/// <summary>
/// A sentence-embedding model in the shape of a small sentence transformer:
/// <c>input_ids</c> int64[batch, sequence] and <c>attention_mask</c> int64[batch, sequence] →
/// Gather(token table) → mask-weighted mean over the sequence → MatMul projection → L2 normalisation →
/// <c>embeddings</c> float[batch, D]. Masked mean pooling makes right-padding harmless, so a batcher can pad
/// requests of different lengths. <see cref="Embed"/> is the independent C# reference.
/// </summary>
public sealed class EmbeddingModel
{
    /// <summary>Name of the token id input.</summary>
    public const string InputIdsName = "input_ids";

    /// <summary>Name of the attention mask input (1 = real token, 0 = padding).</summary>
    public const string AttentionMaskName = "attention_mask";

    /// <summary>Name of the output.</summary>
    public const string OutputName = "embeddings";

    // Guards the divisions: an all-padding row pools to zero instead of NaN.
    private const float Epsilon = 1e-9f;

    private readonly float[] _tokenTable;
    private readonly float[] _projection;

    private EmbeddingModel(EmbeddingModelOptions options, float[] tokenTable, float[] projection)
    {
        Options = options;
        _tokenTable = tokenTable;
        _projection = projection;
    }

    /// <summary>The options the model was generated from.</summary>
    public EmbeddingModelOptions Options { get; }

    /// <summary>Row-major [VocabularySize, TokenDimension] token embeddings.</summary>
    public IReadOnlyList<float> TokenTable => _tokenTable;

    /// <summary>Row-major [TokenDimension, OutputDimension] projection.</summary>
    public IReadOnlyList<float> Projection => _projection;

    /// <summary>Number of parameters (table plus projection).</summary>
    public long ParameterCount => (long)Options.VocabularySize * Options.TokenDimension + (long)Options.TokenDimension * Options.OutputDimension;

    /// <summary>Generates the weights from the seed.</summary>
    public static EmbeddingModel Create(EmbeddingModelOptions? options = null)
    {
        options ??= new EmbeddingModelOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.VocabularySize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.TokenDimension, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.OutputDimension, 1);
        var random = new DeterministicRandom(options.Seed);
        var table = random.NextSymmetricArray(options.VocabularySize * options.TokenDimension, 1f);
        var projection = random.NextSymmetricArray(options.TokenDimension * options.OutputDimension,
            MathF.Sqrt(6f / (options.TokenDimension + options.OutputDimension)));
        return new EmbeddingModel(options, table, projection);
    }

    /// <summary>Floating-point operations per sample for a given sequence length.</summary>
    public long FlopsPerSample(int sequenceLength) =>
        3L * sequenceLength * Options.TokenDimension + 2L * Options.TokenDimension * Options.OutputDimension + 3L * Options.OutputDimension;

    /// <summary>The ONNX model.</summary>
    public GeneratedModel ToModel(string kind = "embedding")
    {
        var o = Options;
        var graph = new OnnxGraphBuilder("sentence_embedding");
        graph.AddInput(InputIdsName, OnnxDataType.Int64, "batch", "sequence");
        graph.AddInput(AttentionMaskName, OnnxDataType.Int64, "batch", "sequence");
        graph.AddInitializer("token_embeddings", _tokenTable, o.VocabularySize, o.TokenDimension);
        graph.AddInitializer("projection", _projection, o.TokenDimension, o.OutputDimension);
        graph.AddInitializer("axis_1", [1L], 1);
        graph.AddInitializer("axis_2", [2L], 1);
        graph.AddInitializer("epsilon", [Epsilon], 1);

        var tokens = graph.Op("Gather", ["token_embeddings", InputIdsName], OnnxAttribute.Int("axis", 0)); // [b, s, E]
        var mask = graph.Op("Cast", [AttentionMaskName], OnnxAttribute.Int("to", (long)OnnxDataType.Float)); // [b, s]
        var mask3 = graph.Op("Unsqueeze", [mask, "axis_2"]); // [b, s, 1]
        var masked = graph.Op("Mul", [tokens, mask3]);
        var summed = graph.Op("ReduceSum", [masked, "axis_1"], OnnxAttribute.Int("keepdims", 0)); // [b, E]
        var count = graph.Op("ReduceSum", [mask3, "axis_1"], OnnxAttribute.Int("keepdims", 0)); // [b, 1]
        var mean = graph.Op("Div", [summed, graph.Op("Max", [count, "epsilon"])]);
        var projected = graph.Op("MatMul", [mean, "projection"]); // [b, D]
        var norm = graph.Op("ReduceL2", [projected], OnnxAttribute.Ints("axes", 1), OnnxAttribute.Int("keepdims", 1)); // [b, 1]
        graph.AddNode("Div", [projected, graph.Op("Max", [norm, "epsilon"])], [OutputName]);
        graph.AddOutput(OutputName, OnnxDataType.Float, "batch", o.OutputDimension);

        var description = $"Sentence embedding: '{InputIdsName}' int64[batch,sequence] + '{AttentionMaskName}' int64[batch,sequence] → " +
                          $"Gather[{o.VocabularySize}×{o.TokenDimension}] → masked mean → MatMul[{o.TokenDimension}×{o.OutputDimension}] → " +
                          $"L2 normalise → '{OutputName}' float[batch,{o.OutputDimension}]; seed {o.Seed}";
        var bytes = graph.ToBytes(description, new Dictionary<string, string>
        {
            ["platform.kind"] = kind,
            ["platform.seed"] = o.Seed.ToString(CultureInfo.InvariantCulture),
        });
        return new GeneratedModel(kind, bytes, ParameterCount, FlopsPerSample(128), description + " (FLOPs for sequence 128)");
    }

    /// <summary>Reference computation: embeddings [batch, D] for ids and mask of shape [batch, sequence].</summary>
    public float[] Embed(ReadOnlySpan<long> inputIds, ReadOnlySpan<long> attentionMask, int batch, int sequence)
    {
        if (inputIds.Length != batch * sequence || attentionMask.Length != batch * sequence)
        {
            throw new ArgumentException($"Expected {batch}×{sequence} ids and mask values.");
        }
        int e = Options.TokenDimension, d = Options.OutputDimension;
        var table = _tokenTable;
        var projection = _projection;
        var result = new float[batch * d];
        var mean = new double[e];
        var projected = new double[d];
        for (var b = 0; b < batch; b++)
        {
            Array.Clear(mean);
            double count = 0;
            for (var s = 0; s < sequence; s++)
            {
                var id = inputIds[b * sequence + s];
                if (id < 0 || id >= Options.VocabularySize)
                {
                    throw new ArgumentOutOfRangeException(nameof(inputIds), $"Token id {id} is outside [0, {Options.VocabularySize}).");
                }
                double m = attentionMask[b * sequence + s];
                count += m;
                for (var k = 0; k < e; k++)
                {
                    mean[k] += table[id * e + k] * m;
                }
            }
            var divisor = Math.Max(count, Epsilon);
            for (var k = 0; k < e; k++)
            {
                mean[k] /= divisor;
            }
            double squares = 0;
            for (var j = 0; j < d; j++)
            {
                double sum = 0;
                for (var k = 0; k < e; k++)
                {
                    sum += mean[k] * projection[k * d + j];
                }
                projected[j] = sum;
                squares += sum * sum;
            }
            var norm = Math.Max(Math.Sqrt(squares), Epsilon);
            for (var j = 0; j < d; j++)
            {
                result[b * d + j] = (float)(projected[j] / norm);
            }
        }
        return result;
    }
}
