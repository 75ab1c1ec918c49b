using System.Runtime.InteropServices;
using System.Text;
using Google.Protobuf;
using Microsoft.Extensions.Options;
using Platform.Inference.Protocol.Wire;
using Platform.Inference.Routing;

namespace Platform.ContextEnrichment.Documents;

/// <summary>Embedding settings (section <c>Embedding</c>).</summary>
public sealed class EmbeddingOptions
{
    /// <summary>Registry name of the embedding model the workers serve (its highest active version is used).</summary>
    public string Model { get; set; } = "text-embedding";

    /// <summary>Rows of the model's token table: token ids are word hashes modulo this.</summary>
    public int VocabularySize { get; set; } = 1000;

    /// <summary>Longest token sequence sent; longer texts are truncated.</summary>
    public int MaxTokens { get; set; } = 256;

    /// <summary>Time allowed for one embedding call.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>The embedding model could not be reached or answered with an error.</summary>
public sealed class EmbeddingUnavailableException(string message) : Exception(message);

/// <summary>
/// Embeds text with the platform's own workers: a hashing tokenizer (lower-cased words, FNV-1a modulo
/// the vocabulary) feeds <c>input_ids</c>/<c>attention_mask</c> of the registered embedding model.
/// </summary>
public sealed class WorkerEmbedder(WorkerClient workers, IOptions<EmbeddingOptions> options, TimeProvider time)
{
    /// <summary>Token ids for <paramref name="text"/>: deterministic, so tests can reproduce them.</summary>
    public static long[] Tokenize(string text, int vocabularySize, int maxTokens)
    {
        var ids = new List<long>();
        foreach (var word in text.ToLowerInvariant().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            var trimmed = word.Trim('.', ',', ';', ':', '!', '?', '"', '\'', '(', ')');
            if (trimmed.Length == 0)
            {
                continue;
            }

            var hash = 2166136261u;
            foreach (var b in Encoding.UTF8.GetBytes(trimmed))
            {
                hash = (hash ^ b) * 16777619u;
            }

            ids.Add(hash % (uint)vocabularySize);
            if (ids.Count == maxTokens)
            {
                break;
            }
        }

        return ids.Count == 0 ? [0] : [.. ids];
    }

    /// <summary>The embedding of <paramref name="text"/>.</summary>
    /// <exception cref="EmbeddingUnavailableException">No worker serves the model, or it failed.</exception>
    public async Task<float[]> EmbedAsync(string text, CancellationToken cancellationToken)
    {
        var o = options.Value;
        var ids = Tokenize(text, o.VocabularySize, o.MaxTokens);
        var mask = Enumerable.Repeat(1L, ids.Length).ToArray();
        var request = new InferItem { RequestId = Guid.NewGuid().ToString("N") };
        request.Inputs.Add(Tensor("input_ids", ids));
        request.Inputs.Add(Tensor("attention_mask", mask));
        var result = await workers.InferAsync(o.Model, 0, request, time.GetUtcNow() + o.Timeout, cancellationToken);
        if (result.Result is not { } response)
        {
            throw new EmbeddingUnavailableException(
                $"Embedding model '{o.Model}' is unavailable: {result.Error?.Message ?? "no answer from the workers"}");
        }

        var output = response.Outputs.FirstOrDefault()
            ?? throw new EmbeddingUnavailableException($"Embedding model '{o.Model}' returned no output.");
        if (output.Datatype != DataType.Fp32)
        {
            throw new EmbeddingUnavailableException($"Embedding model '{o.Model}' returned {output.Datatype}; FP32 is needed.");
        }

        return MemoryMarshal.Cast<byte, float>(output.Data.Span).ToArray();
    }

    private static Tensor Tensor(string name, long[] values)
    {
        var tensor = new Tensor { Name = name, Datatype = DataType.Int64, Data = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        tensor.Shape.Add(1);
        tensor.Shape.Add(values.Length);
        return tensor;
    }
}
