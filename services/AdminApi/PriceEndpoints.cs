using Platform.ModelRegistry;
using Platform.Tenancy.Admin;

namespace Platform.AdminApi;

/// <summary>
/// Model prices under <c>/api/prices</c> (admin key required). A price applies to a model name whether or not the model
/// is registered yet, so pricing can be set before the first upload.
/// </summary>
internal static partial class PriceEndpoints
{
    /// <summary>Largest price per 1,000 inferences (the column is numeric(20, 9)).</summary>
    public const decimal MaxPer1kInferences = 1_000_000_000m;

    /// <summary>Largest price per input element (the column is numeric(24, 15)).</summary>
    public const decimal MaxPerInputElement = 1_000_000m;

    private static readonly string[] PriceFields = ["per1kInferences", "perInputElement", "currency"];

    public static void MapPriceEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var api = endpoints.MapGroup("/api/prices").AddEndpointFilter<AdminKeyFilter>();

        api.MapGet("/", async (TenantStore store, CancellationToken ct) => Results.Ok(new { prices = await store.ListPricesAsync(ct) }));

        api.MapGet("/{model}", async (string model, TenantStore store, CancellationToken ct) =>
            ValidateModel(model) ?? (await store.GetPriceAsync(model, ct) is { } price ? Results.Ok(price) : NoPrice(model)));

        api.MapPut("/{model}", async (string model, HttpContext context, TenantStore store, TenancyChangePublisher changes, ILoggerFactory loggers, CancellationToken ct) =>
        {
            if (ValidateModel(model) is { } invalid)
            {
                return invalid;
            }

            var (body, error) = await JsonBody.ReadAsync(context.Request, emptyAllowed: false, PriceFields, ct);
            if (body is null)
            {
                return TenancyApi.BadRequest(error!);
            }

            var per1k = Amount(body, "per1kInferences", MaxPer1kInferences, 9);
            var perElement = Amount(body, "perInputElement", MaxPerInputElement, 15);
            if (body.Error is null && per1k == 0 && perElement == 0)
            {
                body.Fail("per1kInferences: per1kInferences or perInputElement must be greater than 0 (DELETE the price to make a model free)");
            }

            var currency = body.RequiredText("currency", 16);
            if (body.Error is null && !BudgetEndpoints.IsCurrency(currency))
            {
                body.Fail($"currency: '{currency}' is not an ISO 4217 code (three upper-case letters, e.g. USD)");
            }

            if (body.Error is not null)
            {
                return TenancyApi.BadRequest(body.Error);
            }

            var price = await store.SetPriceAsync(model, per1k, perElement, currency, ct);
            await changes.PricesChangedAsync(ct);
            LogPriceSet(loggers.CreateLogger(TenantEndpoints.LogCategory), model, price.Per1kInferences, price.PerInputElement, price.Currency);
            return Results.Ok(price);
        });

        api.MapDelete("/{model}", async (string model, TenantStore store, TenancyChangePublisher changes, ILoggerFactory loggers, CancellationToken ct) =>
        {
            if (ValidateModel(model) is { } invalid)
            {
                return invalid;
            }

            if (!await store.DeletePriceAsync(model, ct))
            {
                return NoPrice(model);
            }

            await changes.PricesChangedAsync(ct);
            LogPriceDeleted(loggers.CreateLogger(TenantEndpoints.LogCategory), model);
            return Results.NoContent();
        });
    }

    private static decimal Amount(JsonBody body, string field, decimal max, int decimals)
    {
        var value = body.Decimal(field) ?? 0m;
        if (body.Error is null && !(value >= 0 && value <= max))
        {
            body.Fail($"{field}: must be at least 0 and at most {max}");
        }
        else if (body.Error is null && decimal.Round(value, decimals) != value)
        {
            body.Fail($"{field}: at most {decimals} decimal places");
        }

        return value;
    }

    private static IResult? ValidateModel(string model) =>
        ModelNames.Validate(model) is { } problem ? TenancyApi.BadRequest($"model: '{model}' {problem}") : null;

    private static IResult NoPrice(string model) => Results.NotFound(new ApiError($"model: no price for '{model}'"));

    [LoggerMessage(EventId = 40, Level = LogLevel.Information, Message = "Price of {Model}: {Per1kInferences} per 1k inferences + {PerInputElement} per input element ({Currency})")]
    private static partial void LogPriceSet(ILogger logger, string model, decimal per1kInferences, decimal perInputElement, string currency);

    [LoggerMessage(EventId = 41, Level = LogLevel.Information, Message = "Removed the price of {Model}")]
    private static partial void LogPriceDeleted(ILogger logger, string model);
}
