using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using StableLayers.Core.Imaging;
using StableLayers.Server.Jobs;

namespace StableLayers.Server.Api;

/// <summary>The page and the HTTP API (README "HTTP API"). Every error is <c>{"error": "..."}</c> with a fitting status.</summary>
internal static class Routes
{
    private const string Csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
        + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    private static readonly ConcurrentDictionary<string, byte[]> Assets = new(StringComparer.Ordinal);

    private static readonly Dictionary<string, string> AssetTypes = new(StringComparer.Ordinal)
    {
        ["index.html"] = "text/html; charset=utf-8",
        ["app.js"] = "text/javascript; charset=utf-8",
        ["app.css"] = "text/css; charset=utf-8",
    };

    public static void Map(WebApplication app, JobQueue queue)
    {
        var options = queue.Options;
        bool loopback = StableLayersServer.IsLoopback(options.Host);
        app.Use((ctx, next) => Guard(ctx, next, loopback));

        app.MapGet("/", () => Asset("index.html"));
        app.MapGet("/app.js", () => Asset("app.js"));
        app.MapGet("/app.css", () => Asset("app.css"));

        var api = app.MapGroup("/api");
        api.MapGet("/info", () => Results.Json(new InfoView(
            queue.Engine.ModelName,
            queue.Engine.JudgeName,
            JobSettings.MinLayers,
            JobSettings.MaxLayers,
            Auto: true,
            options.MaxSteps,
            options.MaxUploadBytes,
            options.MaxUploadPixels,
            options.HeartbeatTimeout.TotalSeconds,
            ["png", "jpeg", "webp"],
            queue.Stats), Json.Options));
        api.MapPost("/jobs", (HttpContext ctx) => PostJob(ctx, queue));
        api.MapGet("/jobs/{id}", (string id) => Results.Json(JobView.Of(Find(queue, id), queue), Json.Options));
        api.MapPost("/jobs/{id}/cancel", (string id) =>
        {
            var job = Find(queue, id);
            if (!queue.Cancel(job, "cancelled by the user"))
            {
                throw new ApiException(409, $"the job has already ended ({job.Status.ToString().ToLowerInvariant()})");
            }

            return Results.Json(JobView.Of(job, queue), Json.Options);
        });
        api.MapDelete("/jobs/{id}", (string id) =>
        {
            queue.Remove(Find(queue, id));
            return Results.NoContent();
        });
        api.MapGet("/jobs/{id}/input.png", (string id) => Png(PngCodec.EncodeRgb(Find(queue, id).Input)));
        api.MapGet("/jobs/{id}/composite.png", (string id) => Png(PngCodec.Encode(Done(queue, id).Outcome!.Stack.Composite())));
        api.MapGet("/jobs/{id}/layers/{file}", (string id, string file) =>
        {
            var stack = Done(queue, id).Outcome!.Stack;
            if (!file.EndsWith(".png", StringComparison.Ordinal)
                || !int.TryParse(file.AsSpan(0, file.Length - 4), NumberStyles.None, CultureInfo.InvariantCulture, out int k)
                || k >= stack.Count)
            {
                throw new ApiException(404, $"no such layer: the job has layers 0..{stack.Count - 1} ({{k}}.png)");
            }

            return Png(PngCodec.Encode(stack[k]));
        });
        api.MapGet("/jobs/{id}/{file}", (string id, string file) =>
        {
            var job = Done(queue, id);
            var stack = job.Outcome!.Stack;
            string name = job.DisplayName + "-layers";
            return file switch
            {
                "layers.psd" => Results.Bytes(ResultFiles.Psd(stack), "image/vnd.adobe.photoshop", name + ".psd"),
                "layers.ora" => Results.Bytes(ResultFiles.Ora(stack), "image/openraster", name + ".ora"),
                "layers.zip" => Results.Bytes(ResultFiles.Zip(stack, job.Input, $"stable-layers serve ({queue.Engine.ModelName}, seed {job.Settings.Seed}, {job.Settings.Steps} steps)"), "application/zip", name + ".zip"),
                _ => throw new ApiException(404, "no such download: layers.psd, layers.ora or layers.zip"),
            };
        });
        // No fallback route: a fallback would answer every method, hiding routing's 405; Guard writes the JSON 404.
    }

    /// <summary>Security headers, the Host and Origin checks, and the JSON error policy around every request.</summary>
    private static async Task Guard(HttpContext ctx, RequestDelegate next, bool loopback)
    {
        var h = ctx.Response.Headers;
        h.XContentTypeOptions = "nosniff";
        h["Referrer-Policy"] = "no-referrer";
        h.ContentSecurityPolicy = Csp;
        h.XFrameOptions = "DENY";
        h.CacheControl = "no-store";
        try
        {
            // A page elsewhere could point a host name at 127.0.0.1 (DNS rebinding) and read the API; a loopback server
            // therefore answers only requests addressed to a loopback name.
            string host = ctx.Request.Host.Host;
            if (loopback && host is not ("localhost" or "127.0.0.1" or "[::1]" or "::1"))
            {
                throw new ApiException(400, $"this server answers only requests to localhost, not to '{Clip(host)}'");
            }

            // A cross-site form can post to localhost without asking (multipart is a "simple" request): refuse other origins.
            if (!HttpMethods.IsGet(ctx.Request.Method) && !HttpMethods.IsHead(ctx.Request.Method)
                && ctx.Request.Headers.Origin is { Count: > 0 } origin
                && !string.Equals(origin.ToString(), $"{ctx.Request.Scheme}://{ctx.Request.Host}", StringComparison.OrdinalIgnoreCase))
            {
                throw new ApiException(403, $"cross-origin request from '{Clip(origin.ToString())}' refused");
            }

            await next(ctx);
            if (ctx.Response.StatusCode >= 400 && !ctx.Response.HasStarted && ctx.Response.ContentType is null)
            {
                // Routing's own refusals (405, 415 ...) come without a body.
                await Write(ctx, ctx.Response.StatusCode, ReasonFor(ctx.Response.StatusCode, ctx.Request));
            }
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            // The client went away; there is nobody to answer.
        }
        catch (Exception e) when (!ctx.Response.HasStarted)
        {
            var (status, message) = e switch
            {
                ApiException api => (api.StatusCode, api.Message),
                BadHttpRequestException bad => (bad.StatusCode, bad.StatusCode == 413 ? "the upload is over the server's size limit" : $"bad request: {bad.Message}"),
                InvalidDataException data when data.Message.Contains("limit", StringComparison.OrdinalIgnoreCase) => (413, "the upload is over the server's size limit"),
                InvalidDataException data => (400, $"malformed multipart body: {data.Message}"),
                _ => (500, $"internal error: {e.GetType().Name}: {e.Message}"),
            };
            await Write(ctx, status, message);
        }
    }

    private static async Task PostJob(HttpContext ctx, JobQueue queue)
    {
        var options = queue.Options;
        var req = ctx.Request;
        if (req.ContentLength > options.MaxUploadBytes + (64 * 1024))
        {
            throw new ApiException(413, $"the upload is {req.ContentLength} bytes, over the server's limit of {options.MaxUploadBytes} bytes");
        }

        if (!req.HasFormContentType || !(req.ContentType ?? "").StartsWith("multipart/form-data", StringComparison.OrdinalIgnoreCase))
        {
            throw new ApiException(415, "send multipart/form-data with the image in a field named 'image' (and optional layers, seed, steps fields)");
        }

        // The whole form stays in memory (no temp files), within the upload limit.
        int buffer = (int)Math.Min(int.MaxValue, options.MaxUploadBytes + (64 * 1024));
        ctx.Features.Set<IFormFeature>(new FormFeature(req, new FormOptions
        {
            MemoryBufferThreshold = buffer,
            MultipartBodyLengthLimit = buffer,
            BufferBodyLengthLimit = buffer,
            ValueCountLimit = 16,
            ValueLengthLimit = 256,
            KeyLengthLimit = 64,
        }));
        var form = await req.ReadFormAsync(ctx.RequestAborted);
        var files = form.Files.GetFiles("image");
        if (files.Count != 1)
        {
            throw new ApiException(400, files.Count == 0 ? "no file in the form field 'image'" : "send one image per job");
        }

        var file = files[0];
        if (file.Length > options.MaxUploadBytes)
        {
            throw new ApiException(413, $"the file is {file.Length} bytes, over the server's limit of {options.MaxUploadBytes} bytes");
        }

        int? layers = JobSettings.ParseLayers(form["layers"]);
        var settings = new JobSettings(layers, JobSettings.ParseSeed(form["seed"]), JobSettings.ParseSteps(form["steps"], options.MaxSteps))
        {
            Auto = JobSettings.ParseAuto(layers is null, form["auto_method"], form["min_layers"], form["max_layers"]),
        };
        var bytes = new byte[file.Length];
        await using (var s = file.OpenReadStream())
        {
            await s.ReadExactlyAsync(bytes, ctx.RequestAborted);
        }

        var (image, format) = Upload.Decode(bytes, options.MaxUploadPixels);
        var job = queue.TryEnqueue(image, format, Upload.SafeName(file.FileName), settings);
        if (job is null)
        {
            var stats = queue.Stats;
            ctx.Response.Headers.RetryAfter = "5";
            throw new ApiException(429, $"the queue is full ({stats.Running} running, {stats.Queued} waiting): try again later");
        }

        string location = $"/api/jobs/{job.Id}";
        ctx.Response.Headers.Location = location;
        bool wait = req.Query["wait"] is { Count: 1 } w && w[0] is "1" or "true";
        if (!wait)
        {
            await Results.Json(JobView.Of(job, queue), Json.Options, statusCode: 202).ExecuteAsync(ctx);
            return;
        }

        // The request stays open until the job ends; if the client hangs up, the job is cancelled.
        await queue.WaitHeldAsync(job, ctx.RequestAborted);
        var view = JobView.Of(job, queue);
        switch (job.Status)
        {
            case JobStatus.Done:
                await Results.Json(view, Json.Options).ExecuteAsync(ctx);
                break;
            case JobStatus.Cancelled:
                await Results.Json(new ErrorView(job.Error ?? "cancelled", job.Id), Json.Options, statusCode: 409).ExecuteAsync(ctx);
                break;
            default:
                await Results.Json(new ErrorView(job.Error ?? "failed", job.Id), Json.Options, statusCode: 500).ExecuteAsync(ctx);
                break;
        }
    }

    private static Job Find(JobQueue queue, string id) =>
        queue.Find(id) ?? throw new ApiException(404, "no such job (ids are 32 hex digits; finished jobs are forgotten after the newest " + queue.Options.KeepFinished + ")");

    private static Job Done(JobQueue queue, string id)
    {
        var job = Find(queue, id);
        return job.Status == JobStatus.Done
            ? job
            : throw new ApiException(409, $"the job is {job.Status.ToString().ToLowerInvariant()}: its layers exist only once it is done");
    }

    private static IResult Png(byte[] png) => Results.Bytes(png, "image/png");

    private static IResult Asset(string name)
    {
        byte[] bytes = Assets.GetOrAdd(name, n =>
        {
            using var s = typeof(Routes).Assembly.GetManifestResourceStream("StableLayers.Server.wwwroot." + n)
                ?? throw new InvalidOperationException($"embedded page file {n} is missing from the build");
            using var ms = new MemoryStream();
            s.CopyTo(ms);
            return ms.ToArray();
        });
        return Results.Bytes(bytes, AssetTypes[name]);
    }

    private static Task Write(HttpContext ctx, int status, string message)
    {
        ctx.Response.StatusCode = status;
        return ctx.Response.WriteAsJsonAsync(new ErrorView(message), Json.Options);
    }

    private static string ReasonFor(int status, HttpRequest req) => status switch
    {
        404 => $"no such endpoint: {req.Method} {Clip(req.Path.Value)}",
        405 => $"method {req.Method} not allowed on {Clip(req.Path.Value)}",
        413 => "the upload is over the server's size limit",
        415 => "unsupported content type",
        _ => $"HTTP {status}",
    };

    private static string Clip(string? s) => JobSettings.Truncate(s ?? string.Empty);
}

/// <summary>Every error the API answers: a message, and the job's id where one is concerned.</summary>
public sealed record ErrorView(string Error, [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] string? Id = null);
