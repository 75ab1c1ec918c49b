using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace Platform.Hosting.ApplicationModel;

/// <summary>Something whose value is known in run mode (an allocated port, a parameter's value...).</summary>
public interface IValueProvider
{
    /// <summary>The run-mode value.</summary>
    ValueTask<string?> GetValueAsync(CancellationToken cancellationToken);
}

/// <summary>Something that publish mode renders as an Aspire manifest expression, e.g. <c>{postgres.bindings.tcp.host}</c>.</summary>
public interface IManifestExpressionProvider
{
    /// <summary>The manifest expression.</summary>
    string ValueExpression { get; }
}

/// <summary>
/// A string with holes filled by value providers: one definition that run mode evaluates and
/// publish mode renders (as a manifest expression or Kubernetes values).
/// </summary>
public sealed class ReferenceExpression : IValueProvider, IManifestExpressionProvider
{
    private ReferenceExpression(string format, IReadOnlyList<object> valueProviders)
    {
        Format = format;
        ValueProviders = valueProviders;
    }

    /// <summary>Composite format string: literal text with <c>{0}</c>, <c>{1}</c>... holes.</summary>
    public string Format { get; }

    /// <summary>The holes' providers: each an <see cref="IValueProvider"/> and <see cref="IManifestExpressionProvider"/>.</summary>
    public IReadOnlyList<object> ValueProviders { get; }

    /// <summary>Builds an expression from an interpolated string; interpolated values must be value providers.</summary>
    public static ReferenceExpression Create(in ExpressionInterpolatedStringHandler handler) => handler.Build();

    /// <summary>An expression that is literal text.</summary>
    public static ReferenceExpression Literal(string text) =>
        new(text.Replace("{", "{{", StringComparison.Ordinal).Replace("}", "}}", StringComparison.Ordinal), []);

    /// <inheritdoc />
    public async ValueTask<string?> GetValueAsync(CancellationToken cancellationToken)
    {
        var values = new object?[ValueProviders.Count];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = ValueProviders[i] switch
            {
                IValueProvider p => await p.GetValueAsync(cancellationToken).ConfigureAwait(false),
                var other => other?.ToString(),
            };
        }

        return string.Format(CultureInfo.InvariantCulture, Format, values);
    }

    /// <summary>Renders the expression with each hole replaced by <paramref name="render"/> (used by publishers).</summary>
    public string Render(Func<object, string> render) =>
        string.Format(CultureInfo.InvariantCulture, Format, ValueProviders.Select(render).Cast<object?>().ToArray());

    /// <inheritdoc />
    public string ValueExpression => Render(p => p is IManifestExpressionProvider m
        ? m.ValueExpression
        : throw new InvalidOperationException($"{p} cannot be written to a manifest."));

    /// <summary>Collects literal parts and value providers from an interpolated string.</summary>
    [InterpolatedStringHandler]
    public ref struct ExpressionInterpolatedStringHandler
    {
        private readonly StringBuilder _format;
        private readonly List<object> _providers;

        /// <summary>Called by the compiler.</summary>
        public ExpressionInterpolatedStringHandler(int literalLength, int formattedCount)
        {
            _format = new StringBuilder(literalLength + (formattedCount * 4));
            _providers = new List<object>(formattedCount);
        }

        /// <summary>Called by the compiler for literal text.</summary>
        public readonly void AppendLiteral(string value) =>
            _format.Append(value.Replace("{", "{{", StringComparison.Ordinal).Replace("}", "}}", StringComparison.Ordinal));

        /// <summary>Called by the compiler for a hole: a plain string is literal text, anything else must be a value provider.</summary>
        public readonly void AppendFormatted<T>(T value)
        {
            switch (value)
            {
                case string s:
                    AppendLiteral(s);
                    break;
                case int n:
                    AppendLiteral(n.ToString(CultureInfo.InvariantCulture));
                    break;
                case IValueProvider and IManifestExpressionProvider:
                    _format.Append('{').Append(_providers.Count.ToString(CultureInfo.InvariantCulture)).Append('}');
                    _providers.Add(value);
                    break;
                case IResourceBuilder<IResource> b when b.Resource is IValueProvider and IManifestExpressionProvider:
                    _format.Append('{').Append(_providers.Count.ToString(CultureInfo.InvariantCulture)).Append('}');
                    _providers.Add(b.Resource);
                    break;
                default:
                    throw new ArgumentException($"'{value}' is neither text nor a value provider.", nameof(value));
            }
        }

        internal readonly ReferenceExpression Build() => new(_format.ToString(), _providers);
    }
}
