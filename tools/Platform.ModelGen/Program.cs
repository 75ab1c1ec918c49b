using System.Globalization;
using Platform.OnnxModels;

namespace Platform.ModelGen;

/// <summary>
/// Writes Platform's generated ONNX models:
/// <c>dotnet run --project tools/Platform.ModelGen -- &lt;kind&gt; --output &lt;file&gt; [--seed n] [...]</c>.
/// </summary>
internal static class Program
{
    private const string Usage = """
        Usage: Platform.ModelGen <kind> --output <file> [options]
               Platform.ModelGen --list

        Kinds: mlp, multi-io, embedding, benchmark, all-types

        Options:
          --output, -o <file>   where to write the .onnx file (required)
          --seed <n>            weight seed (default 1); same seed, same bytes
          --features <n>        mlp/benchmark: input features
          --hidden <a,b,...>    mlp/benchmark: hidden layer widths
          --classes <n>         mlp/benchmark: output classes
          --vocab <n>           embedding: vocabulary size
          --token-dim <n>       embedding: token table width
          --dim <n>             embedding: output dimension
        """;

    public static async Task<int> Main(string[] args)
    {
        using var cancellation = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cancellation.Cancel();
        };

        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        if (args[0] == "--list")
        {
            foreach (var kind in ModelCatalog.Kinds)
            {
                Console.WriteLine($"{kind}: {ModelCatalog.Generate(kind).Description}");
            }
            return 0;
        }

        try
        {
            var (kind, output, request) = Parse(args);
            var model = ModelCatalog.Generate(kind, request);
            await model.WriteAsync(output, cancellation.Token);
            Console.WriteLine($"kind:        {model.Kind}");
            Console.WriteLine($"output:      {Path.GetFullPath(output)}");
            Console.WriteLine($"bytes:       {model.Bytes.Length.ToString("N0", CultureInfo.InvariantCulture)}");
            Console.WriteLine($"sha256:      {model.Sha256}");
            Console.WriteLine($"parameters:  {model.ParameterCount.ToString("N0", CultureInfo.InvariantCulture)}");
            Console.WriteLine($"flops/item:  {model.FlopsPerSample.ToString("N0", CultureInfo.InvariantCulture)}");
            Console.WriteLine($"description: {model.Description}");
            return 0;
        }
        catch (UsageException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            Console.Error.WriteLine(Usage);
            return 2;
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return 2;
        }
        catch (OperationCanceledException)
        {
            return 130;
        }
    }

    private static (string Kind, string Output, ModelRequest Request) Parse(string[] args)
    {
        var kind = args[0];
        if (!ModelCatalog.Kinds.Contains(kind))
        {
            throw new UsageException($"unknown kind '{kind}'");
        }
        string? output = null;
        var request = new ModelRequest();
        for (var i = 1; i < args.Length; i++)
        {
            var name = args[i];
            if (i + 1 >= args.Length)
            {
                throw new UsageException($"{name} needs a value");
            }
            var value = args[++i];
            request = name switch
            {
                "--seed" => request with { Seed = ulong.Parse(value, CultureInfo.InvariantCulture) },
                "--features" => request with { Features = PositiveInt(name, value) },
                "--hidden" => request with { Hidden = value.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(v => PositiveInt(name, v)).ToArray() },
                "--classes" => request with { Classes = PositiveInt(name, value) },
                "--vocab" => request with { Vocabulary = PositiveInt(name, value) },
                "--token-dim" => request with { TokenDimension = PositiveInt(name, value) },
                "--dim" => request with { Dimension = PositiveInt(name, value) },
                "--output" or "-o" => request,
                _ => throw new UsageException($"unknown option '{name}'"),
            };
            if (name is "--output" or "-o")
            {
                output = value;
            }
        }
        return (kind, output ?? throw new UsageException("--output is required"), request);
    }

    private static int PositiveInt(string option, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number > 0
            ? number
            : throw new UsageException($"{option} expects a positive integer, got '{value}'");

    private sealed class UsageException(string message) : Exception(message);
}
