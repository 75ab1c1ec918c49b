using System.Globalization;
using System.Text.Json;

namespace Platform.AdminApi;

/// <summary>
/// A JSON object body read field by field, so every problem is reported as <c>"&lt;field&gt;: &lt;what is wrong&gt;"</c>
/// and a field sent as <c>null</c> can be told apart from a field not sent (PATCH). Property names match
/// case-insensitively; unknown properties are refused, so a misspelt field is an error rather than silently ignored.
/// The first problem wins: readers return defaults once <see cref="Error"/> is set.
/// </summary>
internal sealed class JsonBody
{
    private readonly Dictionary<string, JsonElement> _fields;

    private JsonBody(Dictionary<string, JsonElement> fields) => _fields = fields;

    /// <summary>The first problem found, as "field: reason".</summary>
    public string? Error { get; private set; }

    /// <summary>
    /// Reads the request body as a JSON object; an empty body is an empty object when <paramref name="emptyAllowed"/>.
    /// Returns a null body and the error when it is not a JSON object or has an unknown property.
    /// </summary>
    public static async Task<(JsonBody? Body, string? Error)> ReadAsync(HttpRequest request, bool emptyAllowed, IReadOnlyCollection<string> known,
        CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, cancellationToken);
        if (buffer.Length == 0)
        {
            return emptyAllowed ? (new JsonBody(new(StringComparer.OrdinalIgnoreCase)), null) : (null, "body: a JSON object is required");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(buffer.ToArray());
        }
        catch (JsonException ex)
        {
            return (null, $"body: not valid JSON ({FirstSentence(ex.Message)})");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return (null, "body: must be a JSON object");
            }

            var fields = new Dictionary<string, JsonElement>(StringComparer.OrdinalIgnoreCase);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                var name = known.FirstOrDefault(k => string.Equals(k, property.Name, StringComparison.OrdinalIgnoreCase));
                if (name is null)
                {
                    return (null, $"{property.Name}: unknown field (expected {string.Join(", ", known)})");
                }

                fields[name] = property.Value.Clone();
            }

            return (new JsonBody(fields), null);
        }
    }

    /// <summary>Whether the field was sent (null included).</summary>
    public bool Has(string field) => _fields.ContainsKey(field);

    /// <summary>Whether the field was sent as JSON null.</summary>
    public bool IsNull(string field) => _fields.TryGetValue(field, out var value) && value.ValueKind == JsonValueKind.Null;

    /// <summary>Records a problem (the first one wins).</summary>
    public void Fail(string error) => Error ??= error;

    /// <summary>
    /// An optional text field: null when absent or null; otherwise trimmed, non-empty, at most <paramref name="maxLength"/>
    /// characters, without control characters.
    /// </summary>
    public string? Text(string field, int maxLength)
    {
        if (Error is not null || !_fields.TryGetValue(field, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.String)
        {
            Fail($"{field}: must be a string");
            return null;
        }

        var text = value.GetString()!.Trim();
        var problem = TextProblem(text, maxLength);
        if (problem is not null)
        {
            Fail($"{field}: {problem}");
            return null;
        }

        return text;
    }

    /// <summary>A required text field (see <see cref="Text"/>).</summary>
    public string RequiredText(string field, int maxLength)
    {
        if (Error is null && (!_fields.TryGetValue(field, out var value) || value.ValueKind == JsonValueKind.Null))
        {
            Fail($"{field}: is required");
        }

        return Text(field, maxLength) ?? string.Empty;
    }

    /// <summary>A list of strings, or null when absent or null.</summary>
    public IReadOnlyList<string>? Strings(string field, int maxCount)
    {
        if (Error is not null || !_fields.TryGetValue(field, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            Fail($"{field}: must be an array of strings");
            return null;
        }

        if (value.GetArrayLength() > maxCount)
        {
            Fail($"{field}: at most {maxCount} entries");
            return null;
        }

        var items = new List<string>();
        var index = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                Fail($"{field}[{index}]: must be a string");
                return null;
            }

            items.Add(item.GetString()!);
            index++;
        }

        return items;
    }

    /// <summary>A list of numbers, or null when absent or null.</summary>
    public IReadOnlyList<double>? Numbers(string field)
    {
        if (Error is not null || !_fields.TryGetValue(field, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            Fail($"{field}: must be an array of numbers");
            return null;
        }

        var items = new List<double>();
        var index = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetDouble(out var number))
            {
                Fail($"{field}[{index}]: must be a number");
                return null;
            }

            items.Add(number);
            index++;
        }

        return items;
    }

    /// <summary>An optional decimal number, or null when absent or null.</summary>
    public decimal? Decimal(string field)
    {
        if (Error is not null || !_fields.TryGetValue(field, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDecimal(out var number))
        {
            Fail($"{field}: must be a number");
            return null;
        }

        return number;
    }

    /// <summary>An optional timestamp (ISO 8601; without an offset it is UTC), or null when absent or null.</summary>
    public DateTimeOffset? Timestamp(string field)
    {
        if (Error is not null || !_fields.TryGetValue(field, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.String
            || !DateTimeOffset.TryParse(value.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var timestamp))
        {
            Fail($"{field}: must be an ISO 8601 timestamp, e.g. 2030-01-31T00:00:00Z");
            return null;
        }

        return timestamp.ToUniversalTime();
    }

    /// <summary>A nested object, or null when absent or null.</summary>
    public JsonElement? Object(string field)
    {
        if (Error is not null || !_fields.TryGetValue(field, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            Fail($"{field}: must be an object");
            return null;
        }

        return value;
    }

    /// <summary>Why <paramref name="text"/> is not acceptable as a free-form label, or null.</summary>
    public static string? TextProblem(string text, int maxLength) =>
        text.Length == 0 ? "must not be empty (leave it out or send null instead)"
        : text.Length > maxLength ? $"must be at most {maxLength} characters"
        : text.Any(char.IsControl) ? "must not contain control characters"
        : null;

    private static string FirstSentence(string message)
    {
        var end = message.IndexOf(". ", StringComparison.Ordinal);
        return end > 0 ? message[..end] : message;
    }
}
