namespace Platform.OnnxModels;

/// <summary>Parameters shared by the generator kinds; each kind reads the ones it uses.</summary>
public sealed record ModelRequest
{
    /// <summary>Seed of the weights.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>MLP input features (mlp, benchmark).</summary>
    public int? Features { get; init; }

    /// <summary>MLP hidden widths (mlp, benchmark).</summary>
    public IReadOnlyList<int>? Hidden { get; init; }

    /// <summary>MLP classes (mlp, benchmark).</summary>
    public int? Classes { get; init; }

    /// <summary>Embedding vocabulary size.</summary>
    public int? Vocabulary { get; init; }

    /// <summary>Embedding token table width.</summary>
    public int? TokenDimension { get; init; }

    /// <summary>Embedding output width.</summary>
    public int? Dimension { get; init; }
}

/// <summary>Creates any generated model by kind name: mlp, multi-io, embedding, benchmark, all-types.</summary>
public static class ModelCatalog
{
    /// <summary>The kinds <see cref="Generate"/> accepts.</summary>
    public static IReadOnlyList<string> Kinds { get; } = ["mlp", "multi-io", "embedding", "benchmark", "all-types"];

    /// <summary>Generates a model of the given kind.</summary>
    /// <exception cref="ArgumentException">Unknown kind.</exception>
    public static GeneratedModel Generate(string kind, ModelRequest? request = null)
    {
        request ??= new ModelRequest();
        switch (kind)
        {
            case "mlp":
            {
                var defaults = new MlpClassifierOptions();
                return MlpClassifier.Create(defaults with
                {
                    Seed = request.Seed,
                    InputFeatures = request.Features ?? defaults.InputFeatures,
                    HiddenSizes = request.Hidden ?? defaults.HiddenSizes,
                    Classes = request.Classes ?? defaults.Classes,
                }).ToModel(kind);
            }
            case "benchmark":
            {
                var defaults = BenchmarkModel.Options(request.Seed);
                return MlpClassifier.Create(defaults with
                {
                    InputFeatures = request.Features ?? defaults.InputFeatures,
                    HiddenSizes = request.Hidden ?? defaults.HiddenSizes,
                    Classes = request.Classes ?? defaults.Classes,
                }).ToModel(kind);
            }
            case "embedding":
            {
                var defaults = new EmbeddingModelOptions();
                return EmbeddingModel.Create(defaults with
                {
                    Seed = request.Seed,
                    VocabularySize = request.Vocabulary ?? defaults.VocabularySize,
                    TokenDimension = request.TokenDimension ?? defaults.TokenDimension,
                    OutputDimension = request.Dimension ?? defaults.OutputDimension,
                }).ToModel(kind);
            }
            case "multi-io":
                return MultiIoModel.Create(kind);
            case "all-types":
                return AllTypesModel.Create(kind);
            default:
                throw new ArgumentException($"Unknown model kind '{kind}'. Known kinds: {string.Join(", ", Kinds)}.", nameof(kind));
        }
    }
}
