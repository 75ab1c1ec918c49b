using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Platform.ServiceDefaults.Telemetry;

/// <summary>
/// Without OpenTelemetry.Instrumentation.AspNetCore the hosting span lacks the route: it is named after the raw
/// operation and carries no http.route. This fills in what the instrumentation package would, after routing ran.
/// </summary>
internal sealed class ServerSpanMiddleware(RequestDelegate next, IOptions<PlatformTelemetryOptions> options)
{
    private readonly string[] _untracedPaths = [.. options.Value.UntracedPaths];

    public async Task InvokeAsync(HttpContext context)
    {
        var activity = context.Features.Get<IHttpActivityFeature>()?.Activity;
        if (activity is null)
        {
            await next(context);
            return;
        }

        if (UntracedPathSampler.IsUntraced(_untracedPaths, context.Request.Path.Value ?? "/"))
        {
            // The sampler could not see the path: unmark the span so export processors skip it.
            activity.IsAllDataRequested = false;
            activity.ActivityTraceFlags &= ~ActivityTraceFlags.Recorded;
            await next(context);
            return;
        }

        try
        {
            await next(context);
        }
        catch (Exception ex)
        {
            // The server turns an escaping exception into a 500 after we return; record it as such now.
            Complete(activity, context, StatusCodes.Status500InternalServerError, ex.GetType().FullName);
            throw;
        }

        Complete(activity, context, context.Response.StatusCode, errorType: null);
    }

    private static void Complete(Activity activity, HttpContext context, int statusCode, string? errorType)
    {
        var method = context.Request.Method;
        var route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText;
        if (!string.IsNullOrEmpty(route))
        {
            if (route[0] != '/')
            {
                route = "/" + route;
            }

            activity.SetTag("http.route", route);
            activity.DisplayName = $"{method} {route}";
        }
        else
        {
            // Semantic conventions: no route template → the method alone, never the raw path (unbounded cardinality).
            activity.DisplayName = method;
        }

        activity.SetTag("http.request.method", method);
        activity.SetTag("http.response.status_code", statusCode);
        if (statusCode >= 500)
        {
            activity.SetTag("error.type", errorType ?? statusCode.ToString(System.Globalization.CultureInfo.InvariantCulture));
            activity.SetStatus(ActivityStatusCode.Error);
        }
    }
}

/// <summary>Puts <see cref="ServerSpanMiddleware"/> first so it sees the final status and the matched endpoint.</summary>
internal sealed class ServerSpanStartupFilter : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.UseMiddleware<ServerSpanMiddleware>();
        next(app);
    };
}
