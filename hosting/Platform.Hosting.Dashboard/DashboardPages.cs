using System.Net;
using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Platform.Hosting.Dashboard;

/// <summary>
/// The browser UI: one small HTML shell per view, drawn by <c>app.js</c> from the JSON API. No build step,
/// no external assets; everything is embedded in this assembly.
/// </summary>
internal static class DashboardPages
{
    private static readonly (string Path, string Title, string View)[] Views =
    [
        ("/", "Resources", "resources"),
        ("/console", "Console", "console"),
        ("/structuredlogs", "Structured logs", "structuredlogs"),
        ("/traces", "Traces", "traces"),
        ("/metrics", "Metrics", "metrics"),
    ];

    public static void Map(WebApplication app, DashboardAuth auth)
    {
        var script = ReadResource("app.js");
        var style = ReadResource("app.css");
        app.MapGet("/_static/app.js", () => Results.Text(script, "text/javascript; charset=utf-8"));
        app.MapGet("/_static/app.css", () => Results.Text(style, "text/css; charset=utf-8"));

        foreach (var (path, title, view) in Views)
        {
            app.MapGet(path, () => Page(title, view, null));
        }

        app.MapGet("/resources/{name}", (string name) => Page(name, "resource", name));
        app.MapGet("/traces/{traceId}", (string traceId) => Page("Trace " + traceId[..Math.Min(8, traceId.Length)], "trace", traceId));

        app.MapGet("/login", (HttpContext context, string? t, string? returnUrl) =>
            t is null ? LoginForm(returnUrl, null) : Login(context, auth, t, returnUrl));
        app.MapPost("/login", async (HttpContext context) =>
        {
            var form = await context.Request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false);
            return Login(context, auth, form["token"].ToString(), form["returnUrl"].ToString());
        }).DisableAntiforgery();
        app.MapGet("/logout", (HttpContext context) =>
        {
            auth.EndSession(context.Request.Cookies[DashboardAuth.CookieName]);
            context.Response.Cookies.Delete(DashboardAuth.CookieName);
            return Results.Redirect("/login");
        });
    }

    private static IResult Login(HttpContext context, DashboardAuth auth, string token, string? returnUrl)
    {
        if (!auth.IsBrowserToken(token))
        {
            return LoginForm(returnUrl, "That token is not valid for this run. Use the Login URL the AppHost printed.");
        }

        context.Response.Cookies.Append(DashboardAuth.CookieName, auth.CreateSession(), new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Strict,
            Path = "/",
            IsEssential = true,
            MaxAge = auth.SessionLifetime,
        });

        // Only local paths: the login link must not become an open redirect.
        var target = returnUrl is { Length: > 0 } && returnUrl.StartsWith('/') && !returnUrl.StartsWith("//", StringComparison.Ordinal)
            && !returnUrl.StartsWith("/\\", StringComparison.Ordinal) ? returnUrl : "/";
        return Results.Redirect(target);
    }

    private static IResult LoginForm(string? returnUrl, string? error)
    {
        var html = $$"""
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Log in · Platform dashboard</title>
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <style>body{font-family:system-ui,sans-serif;background:#f5f6f8;display:flex;justify-content:center;padding-top:12vh}
            form{background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002;width:26rem}
            input[type=password]{width:100%;padding:.5rem;margin:.5rem 0 1rem;box-sizing:border-box}
            .error{color:#b00020}</style></head>
            <body><form method="post" action="/login" data-testid="login-form">
            <h1>Platform dashboard</h1>
            <p>Open the <code>Login:</code> URL the AppHost printed, or paste its token.</p>
            {{(error is null ? string.Empty : $"<p class=\"error\" data-testid=\"login-error\">{WebUtility.HtmlEncode(error)}</p>")}}
            <label>Token <input type="password" name="token" autocomplete="off" autofocus></label>
            <input type="hidden" name="returnUrl" value="{{WebUtility.HtmlEncode(returnUrl ?? "/")}}">
            <button type="submit">Log in</button>
            </form></body></html>
            """;
        return Results.Content(html, "text/html; charset=utf-8", statusCode: error is null ? 200 : 401);
    }

    private static IResult Page(string title, string view, string? argument)
    {
        var nav = string.Join(string.Empty, Views.Select(v =>
            $"<a href=\"{v.Path}\" data-nav=\"{v.View}\">{WebUtility.HtmlEncode(v.Title)}</a>"));
        var html = $"""
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>{WebUtility.HtmlEncode(title)} · Platform dashboard</title>
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <link rel="stylesheet" href="/_static/app.css"></head>
            <body data-view="{view}" data-arg="{WebUtility.HtmlEncode(argument ?? string.Empty)}">
            <header><span class="brand">Platform</span><nav>{nav}</nav><a class="logout" href="/logout">Log out</a></header>
            <main id="main"><p class="muted">Loading…</p></main>
            <script src="/_static/app.js"></script>
            </body></html>
            """;
        return Results.Content(html, "text/html; charset=utf-8");
    }

    private static string ReadResource(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream($"Platform.Hosting.Dashboard.wwwroot.{name}")
            ?? throw new InvalidOperationException($"Embedded resource {name} is missing.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
