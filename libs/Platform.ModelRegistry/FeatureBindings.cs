using System.Buffers.Binary;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Platform.ModelRegistry;

/// <summary>
/// One input of a model version that InferenceApi fills from the feature store when a request names an entity
/// (<c>parameters.entity_id</c>) and does not supply the input itself.
/// </summary>
/// <param name="Input">Name of the model input to fill.</param>
/// <param name="FeatureSet">Feature set (ContextEnrichment <c>/api/features/{featureSet}/{entity}</c>) whose vector fills it.</param>
/// <param name="Default">Values used when the entity has no vector in the set; null makes a missing vector a 400.</param>
public sealed record FeatureBinding(string Input, string FeatureSet, IReadOnlyList<double>? Default = null);

/// <summary>Outcome of <see cref="ModelRegistryStore.SetFeatureBindingsAsync"/>.</summary>
/// <param name="Version">The version with its new bindings; null when the version does not exist or <paramref name="Error"/> is set.</param>
/// <param name="Error">"bindings[i].field: reason" when the bindings do not fit the version's signature; nothing was stored.</param>
public sealed record FeatureBindingsUpdate(ModelVersionRecord? Version, string? Error);

/// <summary>
/// The rules a feature binding must follow and the conversion of feature values into an input tensor. AdminApi checks
/// bindings with <see cref="Validate"/> when they are declared; InferenceApi fills inputs with <see cref="TryBuild"/>,
/// which applies the same rules, so a binding that was accepted can only fail at inference time because of the data
/// (a missing vector or one of the wrong length), never because of the binding.
/// </summary>
public static partial class FeatureBindingRules
{
    /// <summary>Most values a default (or a feature vector) may hold; the feature store's own limit.</summary>
    public const int MaxValues = 65_536;

    /// <summary>
    /// Null when <paramref name="key"/> is a valid feature set name or entity key, otherwise why not (without the
    /// field name). The same rule as ContextEnrichment's routes, so anything accepted here can be looked up there.
    /// </summary>
    public static string? ValidateKey(string? key) =>
        string.IsNullOrEmpty(key) ? "must not be empty"
        : !KeyPattern().IsMatch(key) ? $"'{key}' must be 1-128 characters of letters, digits, '_', '-', '.', ':'"
        : null;

    /// <summary>Whether <paramref name="datatype"/> (a KServe v2 name) holds numbers a feature value converts to.</summary>
    public static bool IsNumeric(string datatype) => ElementSize(datatype) > 0;

    /// <summary>
    /// Checks <paramref name="bindings"/> against <paramref name="version"/>'s inputs: each input exists once, is numeric
    /// and can be filled from a flat vector (at most one dynamic dimension besides the batch); the feature set name is
    /// valid; a default fits the input's element count and datatype.
    /// </summary>
    /// <returns>Null when valid, otherwise the first problem as "bindings[i].field: reason".</returns>
    public static string? Validate(ModelVersionRecord version, IReadOnlyList<FeatureBinding> bindings)
    {
        ArgumentNullException.ThrowIfNull(version);
        ArgumentNullException.ThrowIfNull(bindings);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < bindings.Count; i++)
        {
            var binding = bindings[i];
            var at = $"bindings[{i}]";
            if (string.IsNullOrEmpty(binding.Input))
            {
                return $"{at}.input: is required (the name of a model input)";
            }

            var spec = version.Inputs.FirstOrDefault(s => s.Name == binding.Input);
            if (spec is null)
            {
                return $"{at}.input: model '{version.Name}' version {version.Version} has no input '{binding.Input}' " +
                       $"(inputs: {string.Join(", ", version.Inputs.Select(s => $"'{s.Name}'"))})";
            }

            if (!seen.Add(binding.Input))
            {
                return $"{at}.input: input '{binding.Input}' is bound more than once";
            }

            if (!IsNumeric(spec.Datatype))
            {
                return $"{at}.input: input '{binding.Input}' is {spec.Datatype}; only numeric inputs (INT*, UINT*, FP16, FP32, FP64) can be filled from features";
            }

            if (Layout(spec) is { Error: { } layoutError })
            {
                return $"{at}.input: input '{binding.Input}' {layoutError}";
            }

            if (ValidateKey(binding.FeatureSet) is { } setError)
            {
                return $"{at}.featureSet: {setError}";
            }

            if (binding.Default is { } defaults)
            {
                if (defaults.Count is 0 or > MaxValues)
                {
                    return $"{at}.default: must hold 1 to {MaxValues} values (got {defaults.Count})";
                }

                if (CountProblem(spec, defaults.Count) is { } countError)
                {
                    return $"{at}.default: {countError}";
                }

                for (var j = 0; j < defaults.Count; j++)
                {
                    if (ConversionProblem(spec.Datatype, defaults[j]) is { } valueError)
                    {
                        return $"{at}.default[{j}]: {valueError}";
                    }
                }
            }
        }

        return null;
    }

    /// <summary>
    /// The element count one batch row of <paramref name="spec"/> needs, or null when a dynamic dimension makes it
    /// depend on the vector (any multiple of the fixed dimensions' product fits then).
    /// </summary>
    public static long? ElementsPerRow(ModelTensorSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var layout = Layout(spec);
        return layout.DynamicIndex < 0 ? layout.FixedCount : null;
    }

    /// <summary>Whether dimension 0 of <paramref name="spec"/> is the (dynamic) batch dimension.</summary>
    public static bool HasBatchDimension(ModelTensorSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return spec.Shape.Count > 0 && spec.Shape[0] < 0;
    }

    /// <summary>
    /// Builds the tensor that fills <paramref name="spec"/> from one vector: shape <c>[rows, ...]</c> with the vector
    /// repeated per row (one entity, possibly several rows) when the input has a batch dimension, else the input's own
    /// shape; the elements converted to the input's datatype, little-endian.
    /// </summary>
    /// <param name="spec">The input to fill.</param>
    /// <param name="values">The feature vector or default.</param>
    /// <param name="rows">Batch rows (ignored when the input has no batch dimension).</param>
    /// <param name="shape">The tensor's shape.</param>
    /// <param name="data">The tensor's bytes.</param>
    /// <param name="error">Why the values do not fit (count or value), without the input's name.</param>
    public static bool TryBuild(ModelTensorSpec spec, ReadOnlySpan<double> values, int rows, out long[] shape, out byte[] data, out string? error)
    {
        ArgumentNullException.ThrowIfNull(spec);
        shape = [];
        data = [];
        var layout = Layout(spec);
        error = layout.Error ?? CountProblem(spec, values.Length);
        if (error is not null)
        {
            return false;
        }

        var size = ElementSize(spec.Datatype);
        if (size <= 0)
        {
            error = $"is {spec.Datatype}, not a numeric datatype";
            return false;
        }

        var batch = HasBatchDimension(spec) ? Math.Max(rows, 1) : 1;
        var dynamicSize = values.Length / layout.FixedCount;
        var dims = spec.Shape.Skip(HasBatchDimension(spec) ? 1 : 0).Select(d => d < 0 ? dynamicSize : d).ToList();
        shape = HasBatchDimension(spec) ? [batch, .. dims] : [.. dims];

        var row = new byte[values.Length * size];
        for (var i = 0; i < values.Length; i++)
        {
            if (!TryWrite(spec.Datatype, values[i], row.AsSpan(i * size, size)))
            {
                error = $"has value {values[i].ToString("R", CultureInfo.InvariantCulture)} at index {i} that {ConversionProblem(spec.Datatype, values[i])}";
                shape = [];
                return false;
            }
        }

        data = new byte[(long)row.Length * batch];
        for (var b = 0; b < batch; b++)
        {
            row.CopyTo(data, b * row.Length);
        }

        return true;
    }

    /// <summary>Why <paramref name="count"/> values do not fit one row of <paramref name="spec"/>, or null when they do.</summary>
    private static string? CountProblem(ModelTensorSpec spec, int count)
    {
        var layout = Layout(spec);
        if (layout.Error is not null)
        {
            return layout.Error;
        }

        var shapeText = "[" + string.Join(",", spec.Shape) + "]";
        if (layout.DynamicIndex < 0)
        {
            return count == layout.FixedCount
                ? null
                : $"has {count} values but input '{spec.Name}' {shapeText} needs {layout.FixedCount} per row";
        }

        return count > 0 && count % layout.FixedCount == 0
            ? null
            : $"has {count} values but input '{spec.Name}' {shapeText} needs a positive multiple of {layout.FixedCount} per row";
    }

    private static (long FixedCount, int DynamicIndex, string? Error) Layout(ModelTensorSpec spec)
    {
        var start = HasBatchDimension(spec) ? 1 : 0;
        long fixedCount = 1;
        var dynamicIndex = -1;
        for (var i = start; i < spec.Shape.Count; i++)
        {
            if (spec.Shape[i] < 0)
            {
                if (dynamicIndex >= 0)
                {
                    return (0, -1, $"has shape [{string.Join(",", spec.Shape)}] with more than one dynamic dimension besides the batch; a feature vector cannot fill it");
                }

                dynamicIndex = i;
            }
            else
            {
                fixedCount = checked(fixedCount * spec.Shape[i]);
            }
        }

        if (fixedCount == 0)
        {
            return (0, -1, $"has shape [{string.Join(",", spec.Shape)}] with no elements per row");
        }

        return (fixedCount, dynamicIndex, null);
    }

    private static int ElementSize(string datatype) => datatype switch
    {
        "UINT8" or "INT8" => 1,
        "UINT16" or "INT16" or "FP16" => 2,
        "UINT32" or "INT32" or "FP32" => 4,
        "UINT64" or "INT64" or "FP64" => 8,
        _ => 0, // BOOL and BYTES are not numbers a feature converts to; unknown names neither.
    };

    /// <summary>Why <paramref name="value"/> cannot be stored as <paramref name="datatype"/>, or null when it can (exactly for integers).</summary>
    private static string? ConversionProblem(string datatype, double value)
    {
        if (!double.IsFinite(value))
        {
            return "is not a finite number";
        }

        (double Min, double Max, bool Integral) range = datatype switch
        {
            "UINT8" => (0d, byte.MaxValue, true),
            "UINT16" => (0d, ushort.MaxValue, true),
            "UINT32" => (0d, uint.MaxValue, true),
            "UINT64" => (0d, 18446744073709551615d, true),
            "INT8" => (sbyte.MinValue, sbyte.MaxValue, true),
            "INT16" => (short.MinValue, short.MaxValue, true),
            "INT32" => (int.MinValue, int.MaxValue, true),
            "INT64" => (-9223372036854775808d, 9223372036854775807d, true),
            "FP16" => ((double)Half.MinValue, (double)Half.MaxValue, false),
            "FP32" => (float.MinValue, float.MaxValue, false),
            "FP64" => (double.MinValue, double.MaxValue, false),
            _ => (0d, -1d, false),
        };
        if (range.Max < range.Min)
        {
            return $"cannot be stored as {datatype}";
        }

        if (range.Integral && Math.Floor(value) != value)
        {
            return $"is not an integer, which {datatype} needs";
        }

        // The 64-bit maxima are not doubles; their bounds above are 2^64 and 2^63, themselves out of range.
        var tooLarge = datatype is "UINT64" or "INT64" ? value >= range.Max : value > range.Max;
        return value < range.Min || tooLarge ? $"is out of the range of {datatype}" : null;
    }

    private static bool TryWrite(string datatype, double value, Span<byte> destination)
    {
        if (ConversionProblem(datatype, value) is not null)
        {
            return false;
        }

        switch (datatype)
        {
            case "UINT8": destination[0] = (byte)value; break;
            case "INT8": destination[0] = unchecked((byte)(sbyte)value); break;
            case "UINT16": BinaryPrimitives.WriteUInt16LittleEndian(destination, (ushort)value); break;
            case "INT16": BinaryPrimitives.WriteInt16LittleEndian(destination, (short)value); break;
            case "UINT32": BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)value); break;
            case "INT32": BinaryPrimitives.WriteInt32LittleEndian(destination, (int)value); break;
            case "UINT64": BinaryPrimitives.WriteUInt64LittleEndian(destination, (ulong)value); break;
            case "INT64": BinaryPrimitives.WriteInt64LittleEndian(destination, (long)value); break;
            case "FP16": BinaryPrimitives.WriteHalfLittleEndian(destination, (Half)value); break;
            case "FP32": BinaryPrimitives.WriteSingleLittleEndian(destination, (float)value); break;
            case "FP64": BinaryPrimitives.WriteDoubleLittleEndian(destination, value); break;
            default: return false;
        }

        return true;
    }

    // ContextEnrichment's route rule for feature sets and entity keys (services/ContextEnrichment/Features/FeatureEndpoints.cs).
    [GeneratedRegex("^[A-Za-z0-9_.:-]{1,128}$", RegexOptions.CultureInvariant)]
    private static partial Regex KeyPattern();
}
