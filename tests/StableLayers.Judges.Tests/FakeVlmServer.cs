using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using StableLayers.Core.Imaging;

namespace StableLayers.Judges.Tests;

public enum FakeFault
{
    None,
    MalformedJson,
    FencedJson,
    ProseAroundJson,
    NumbersAsStrings,
    TooManyRequests,
    ServerError,
    Slow,
    TruncatedBody,
    WrongLabel,
    DuplicateLabel,
    MissingLabel,
    OutOfRange,

    /// <summary>The connection is dropped before any answer (a transport error for the client).</summary>
    CloseConnection,
}

/// <summary>What the server received in one request (decoded).</summary>
public sealed record FakeRequest(string Kind, string Text, IReadOnlyList<RgbaImage> Images, JsonObject Body, TimeSpan Arrival);

/// <summary>
/// An OpenAI-compatible test VLM on 127.0.0.1 (random port): POST /v1/chat/completions and GET /v1/models.
/// It decodes the PNG data URLs it receives and answers from them with <see cref="FakeRubric"/>:
/// the rubric prompt (rubric.v1) and the grid prompt (grid.v1). Faults are injected per request from
/// a queue (in arrival order) or for every request (<see cref="DefaultFault"/>).
/// </summary>
public sealed partial class FakeVlmServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<FakeFault> _faults = new();
    private readonly ConcurrentQueue<FakeRequest> _received = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private int _requests;
    private int _inFlight;
    private int _maxInFlight;
    private int _unauthorized;

    private FakeVlmServer(WebApplication app) => _app = app;

    public Uri BaseUrl { get; private set; } = null!;

    /// <summary>When set, requests without "Authorization: Bearer KEY" get 401.</summary>
    public string? RequiredApiKey { get; set; }

    public FakeFault DefaultFault { get; set; }

    /// <summary>Delay before every answer.</summary>
    public TimeSpan ResponseDelay { get; set; }

    /// <summary>Extra delay of a <see cref="FakeFault.Slow"/> reply.</summary>
    public TimeSpan SlowDelay { get; set; } = TimeSpan.FromSeconds(2);

    public int RetryAfterSeconds { get; set; } = 1;

    /// <summary>The answer to a caption request (the released pipeline's caption instruction, see VlmCaptioner).</summary>
    public string CaptionReply { get; set; } = "A red square poster on a white background with the word \"SALE\" in black letters.";

    /// <summary>Keep decoded requests in <see cref="Received"/> (off for benchmarks).</summary>
    public bool Record { get; set; } = true;

    public int Requests => Volatile.Read(ref _requests);

    public int MaxInFlight => Volatile.Read(ref _maxInFlight);

    public int Unauthorized => Volatile.Read(ref _unauthorized);

    public IReadOnlyList<FakeRequest> Received => _received.ToArray();

    public static async Task<FakeVlmServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(o =>
        {
            o.Listen(IPAddress.Loopback, 0);
            o.Limits.MaxRequestBodySize = 256L * 1024 * 1024;
        });
        var app = builder.Build();
        var server = new FakeVlmServer(app);
        app.MapPost("/v1/chat/completions", (RequestDelegate)server.HandleAsync);
        app.MapGet("/v1/models", (RequestDelegate)(ctx => ctx.Response.WriteAsync("{\"object\":\"list\",\"data\":[{\"id\":\"fake-vlm\",\"object\":\"model\",\"owned_by\":\"tests\"}]}")));
        await app.StartAsync();
        server.BaseUrl = new Uri(app.Urls.First().TrimEnd('/') + "/v1");
        return server;
    }

    public void Enqueue(params FakeFault[] faults)
    {
        foreach (var f in faults)
        {
            _faults.Enqueue(f);
        }
    }

    public void ResetCounters()
    {
        Interlocked.Exchange(ref _requests, 0);
        Interlocked.Exchange(ref _maxInFlight, 0);
        _received.Clear();
    }

    private async Task HandleAsync(HttpContext ctx)
    {
        if (RequiredApiKey is not null && ctx.Request.Headers.Authorization.ToString() != "Bearer " + RequiredApiKey)
        {
            Interlocked.Increment(ref _unauthorized);
            ctx.Response.StatusCode = 401;
            await ctx.Response.WriteAsync("{\"error\":{\"message\":\"invalid api key\",\"type\":\"auth\"}}");
            return;
        }

        Interlocked.Increment(ref _requests);
        int now = Interlocked.Increment(ref _inFlight);
        int seen;
        while (now > (seen = Volatile.Read(ref _maxInFlight)) && Interlocked.CompareExchange(ref _maxInFlight, now, seen) != seen)
        {
        }

        try
        {
            var arrival = _clock.Elapsed;
            var body = (JsonObject)(await JsonNode.ParseAsync(ctx.Request.Body))!;
            FakeFault fault = _faults.TryDequeue(out var f) ? f : DefaultFault;
            var (text, images) = Decode(body);
            string kind = text.Contains("Prompt: grid.v1", StringComparison.Ordinal) ? "grid"
                : text.Contains("# Image Annotator", StringComparison.Ordinal) || text.Contains("# 图像标注器", StringComparison.Ordinal) ? "caption"
                : "rubric";
            if (Record)
            {
                _received.Enqueue(new FakeRequest(kind, text, images, body, arrival));
            }

            await Task.Delay(ResponseDelay + (fault == FakeFault.Slow ? SlowDelay : TimeSpan.Zero), ctx.RequestAborted);
            switch (fault)
            {
                case FakeFault.CloseConnection:
                    ctx.Abort();
                    return;
                case FakeFault.TooManyRequests:
                    ctx.Response.StatusCode = 429;
                    ctx.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
                    await ctx.Response.WriteAsync("{\"error\":{\"message\":\"slow down\"}}");
                    return;
                case FakeFault.ServerError:
                    ctx.Response.StatusCode = 500;
                    await ctx.Response.WriteAsync("{\"error\":{\"message\":\"boom\"}}");
                    return;
            }

            bool logprobs = body["logprobs"]?.GetValue<bool>() == true;
            string content = kind switch
            {
                "grid" => GridReply(text, images, fault),
                "caption" => CaptionReply,
                _ => RubricReply(text, images, fault, compact: logprobs),
            };
            content = fault switch
            {
                FakeFault.MalformedJson => content[..(content.Length / 2)],
                FakeFault.FencedJson => "```json\n" + content + "\n```",
                FakeFault.ProseAroundJson => "Here is my assessment of the layers.\n" + content + "\nLet me know if you need more detail.",
                _ => content,
            };

            var reply = new JsonObject
            {
                ["id"] = "chatcmpl-fake",
                ["object"] = "chat.completion",
                ["created"] = 0,
                ["model"] = body["model"]?.GetValue<string>() ?? "fake-vlm",
                ["choices"] = new JsonArray(new JsonObject
                {
                    ["index"] = 0,
                    ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = content },
                    ["finish_reason"] = "stop",
                    ["logprobs"] = logprobs ? new JsonObject { ["content"] = Logprobs(content) } : null,
                }),
                ["usage"] = new JsonObject
                {
                    ["prompt_tokens"] = PromptTokens(images.Count),
                    ["completion_tokens"] = CompletionTokens(content),
                    ["total_tokens"] = PromptTokens(images.Count) + CompletionTokens(content),
                },
            };
            byte[] bytes = Encoding.UTF8.GetBytes(reply.ToJsonString());
            ctx.Response.ContentType = "application/json";
            if (fault == FakeFault.TruncatedBody)
            {
                ctx.Response.ContentLength = bytes.Length;
                await ctx.Response.Body.WriteAsync(bytes.AsMemory(0, bytes.Length / 2));
                await ctx.Response.Body.FlushAsync();
                ctx.Abort();
                return;
            }

            await ctx.Response.Body.WriteAsync(bytes);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    public static int PromptTokens(int images) => 100 + (10 * images);

    public static int CompletionTokens(string content) => 1 + (content.Length / 4);

    private static (string Text, List<RgbaImage> Images) Decode(JsonObject body)
    {
        var text = new StringBuilder();
        var images = new List<RgbaImage>();
        foreach (var msg in body["messages"]!.AsArray())
        {
            var content = msg!["content"];
            if (content is JsonValue v)
            {
                text.AppendLine(v.GetValue<string>());
                continue;
            }

            foreach (var part in content!.AsArray())
            {
                string type = part!["type"]!.GetValue<string>();
                if (type == "text")
                {
                    text.AppendLine(part["text"]!.GetValue<string>());
                }
                else if (type == "image_url")
                {
                    string url = part["image_url"]!["url"]!.GetValue<string>();
                    const string prefix = "data:image/png;base64,";
                    if (!url.StartsWith(prefix, StringComparison.Ordinal))
                    {
                        throw new InvalidOperationException("fake VLM: expected a PNG data URL");
                    }

                    images.Add(PngCodec.Decode(Convert.FromBase64String(url[prefix.Length..]), "request image"));
                }
            }
        }

        return (text.ToString(), images);
    }

    private static string RubricReply(string text, List<RgbaImage> images, FakeFault fault, bool compact)
    {
        bool recomposite = text.Contains("Recomposite (all layers over white):", StringComparison.Ordinal);
        var layers = images.Skip(1).Take(images.Count - 1 - (recomposite ? 1 : 0)).ToArray();
        int[] s = FakeRubric.Phase1(images[0], layers);
        if (fault == FakeFault.OutOfRange)
        {
            s[2] = 9;
        }

        var o = new JsonObject();
        for (int j = 0; j < 5; j++)
        {
            o[Criteria.Keys[j]] = fault == FakeFault.NumbersAsStrings ? JsonValue.Create(s[j].ToString(CultureInfo.InvariantCulture)) : JsonValue.Create(s[j]);
        }

        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = !compact });
    }

    private static string GridReply(string text, List<RgbaImage> images, FakeFault fault)
    {
        var labels = RowsLine().Match(text).Groups[1].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToList();
        var p1 = new Dictionary<string, double[]>();
        foreach (Match m in Phase1Line().Matches(text))
        {
            var o = JsonNode.Parse(m.Groups[2].Value)!.AsObject();
            p1[m.Groups[1].Value] = Criteria.Keys.Select(k => o[k]!.GetValue<double>()).ToArray();
        }

        var scores = FakeRubric.Grid(images[1], labels, p1);
        var rows = new JsonArray();
        var replyLabels = labels.ToList();
        switch (fault)
        {
            case FakeFault.WrongLabel:
                replyLabels[0] = "ZZ";
                break;
            case FakeFault.DuplicateLabel:
                replyLabels[^1] = replyLabels[0];
                break;
            case FakeFault.MissingLabel:
                replyLabels.RemoveAt(replyLabels.Count - 1);
                break;
        }

        for (int r = 0; r < replyLabels.Count; r++)
        {
            var row = new JsonObject { ["label"] = replyLabels[r] };
            int[] s = scores[labels[Math.Min(r, labels.Count - 1)]];
            for (int j = 0; j < 5; j++)
            {
                row[Criteria.Keys[j]] = fault == FakeFault.OutOfRange && j == 0 ? 150 : s[j];
            }

            rows.Add(row);
        }

        return new JsonObject { ["candidates"] = rows }.ToJsonString();
    }

    /// <summary>One token per character; a digit after a ':' gets alternatives p(d)=0.7, p((d+1)%6)=0.2, p("x")=0.1.</summary>
    private static JsonArray Logprobs(string content)
    {
        var tokens = new JsonArray();
        for (int i = 0; i < content.Length; i++)
        {
            string t = content[i].ToString();
            var top = new JsonArray();
            if (char.IsAsciiDigit(content[i]) && i > 0 && content[i - 1] == ':')
            {
                int d = content[i] - '0';
                top.Add(Alt(t, Math.Log(0.7)));
                top.Add(Alt(((d + 1) % 6).ToString(CultureInfo.InvariantCulture), Math.Log(0.2)));
                top.Add(Alt("x", Math.Log(0.1)));
                tokens.Add(new JsonObject { ["token"] = t, ["logprob"] = Math.Log(0.7), ["bytes"] = null, ["top_logprobs"] = top });
            }
            else
            {
                top.Add(Alt(t, 0));
                tokens.Add(new JsonObject { ["token"] = t, ["logprob"] = 0.0, ["bytes"] = null, ["top_logprobs"] = top });
            }
        }

        return tokens;

        static JsonObject Alt(string token, double lp) => new() { ["token"] = token, ["logprob"] = lp, ["bytes"] = null };
    }

    [GeneratedRegex(@"Rows \(top to bottom\): ([A-Z, ]+)")]
    private static partial Regex RowsLine();

    [GeneratedRegex(@"^([A-Z]+): (\{.*\})$", RegexOptions.Multiline)]
    private static partial Regex Phase1Line();

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
