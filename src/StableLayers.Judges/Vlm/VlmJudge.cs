using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using ChatMessage = Microsoft.Extensions.AI.ChatMessage;
using ChatResponseFormat = Microsoft.Extensions.AI.ChatResponseFormat;

namespace StableLayers.Judges.Vlm;

/// <summary>
/// The judge of docs/JUDGE.md over any OpenAI-compatible chat-completions server with image input.
/// Phase 1 scores each candidate alone (0-5 per criterion); phase 2 sends one labelled grid of the
/// group (chunked with a shared anchor when it is too large) and asks for 0-100 scores that rank the
/// candidates. Every request is cached on disk when a <see cref="JudgementCache"/> is given.
/// </summary>
public sealed class VlmJudge : IJudge, IDisposable
{
    private const string CacheFormat = "vlm-judge-cache/1";
    private readonly VlmJudgeOptions _options;
    private readonly JudgementCache? _cache;
    private readonly VlmCaller _caller;
    private readonly UsageCounter _run;
    private readonly string _endpoint;
    private readonly IReadOnlyList<string>? _poolEndpoints;

    /// <summary>
    /// A judge that talks to <see cref="VlmJudgeOptions.PoolEndpoints"/> (one endpoint or a pool) with the key from
    /// <see cref="VlmJudgeOptions.ApiKeyEnv"/>; <paramref name="log"/> gets a line when a pool endpoint goes out of rotation or comes back.
    /// </summary>
    public VlmJudge(VlmJudgeOptions options, JudgementCache? cache = null, Action<string>? log = null)
        : this(options, Pool(options, log), cache)
    {
    }

    /// <summary>A judge over a caller-supplied chat client for <see cref="VlmJudgeOptions.Endpoint"/> (its retries should be off; not disposed here).</summary>
    public VlmJudge(VlmJudgeOptions options, IChatClient client, JudgementCache? cache = null)
        : this(options, new EndpointPool([(PublicEndpoint(Checked(options).Endpoint), client ?? throw new ArgumentNullException(nameof(client)))], options.MaxConcurrency, options.EndpointCooldown, options.EndpointCooldownMax, ownsClients: false), cache)
    {
    }

    private VlmJudge(VlmJudgeOptions options, EndpointPool pool, JudgementCache? cache)
    {
        _options = options;
        _cache = cache;
        _caller = new VlmCaller(pool, options, ownsPool: true);
        // With several endpoints (one model behind all of them) the cache key names the set, not the one that answered,
        // so a judgement cached from any endpoint is found again whichever endpoint is up.
        _endpoint = string.Join(",", pool.Endpoints.Order(StringComparer.Ordinal));
        _poolEndpoints = pool.Count > 1 ? pool.Endpoints : null;
        _run = new UsageCounter(_poolEndpoints);
        Name = $"vlm/{options.Model}@{_endpoint}/{RubricPrompt.Id}+{GridPrompt.Id}";
    }

    private static VlmJudgeOptions Checked(VlmJudgeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return options;
    }

    private static EndpointPool Pool(VlmJudgeOptions options, Action<string>? log)
    {
        Checked(options);
        var clients = new List<(string, IChatClient)>();
        try
        {
            foreach (var e in options.PoolEndpoints)
            {
                clients.Add((PublicEndpoint(e), CreateChatClient(options, e)));
            }
        }
        catch
        {
            clients.ForEach(c => c.Item2.Dispose());
            throw;
        }

        return new EndpointPool(clients, options.MaxConcurrency, options.EndpointCooldown, options.EndpointCooldownMax, ownsClients: true, log);
    }

    public string Name { get; }

    public VlmJudgeOptions Options => _options;

    public PromptTemplate RubricPrompt { get; } = VlmPrompts.Rubric();

    public PromptTemplate GridPrompt { get; } = VlmPrompts.Grid();

    /// <summary>Totals over every group this judge has scored; no secrets.</summary>
    public VlmRunTotals Totals
    {
        get
        {
            JudgeUsage u = _run.Snapshot();
            return new VlmRunTotals(u, u.Cost(_options.PricePerMillionIn, _options.PricePerMillionOut), _run.CallLatency.TotalMilliseconds, _cache?.CorruptEntries ?? 0,
                _poolEndpoints is null ? null : _caller.Pool.Snapshot());
        }
    }

    /// <summary>
    /// <c>IChatClient</c> over the OpenAI SDK for <paramref name="options"/>: the SDK's own retries are
    /// off and its network timeout sits above ours, so <see cref="VlmJudgeOptions.MaxRetries"/> and
    /// <see cref="VlmJudgeOptions.Timeout"/> are the only ones in force. The key is read from the
    /// environment here and kept only inside the SDK credential.
    /// </summary>
    public static IChatClient CreateChatClient(VlmJudgeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return CreateChatClient(options, options.Endpoint);
    }

    /// <summary>As <see cref="CreateChatClient(VlmJudgeOptions)"/>, for one endpoint of a pool.</summary>
    public static IChatClient CreateChatClient(VlmJudgeOptions options, Uri endpoint)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(endpoint);
        string? key = Environment.GetEnvironmentVariable(options.ApiKeyEnv);
        var clientOptions = new OpenAIClientOptions
        {
            Endpoint = endpoint,
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
            NetworkTimeout = options.Timeout + TimeSpan.FromSeconds(30),
        };
        return new OpenAIClient(new ApiKeyCredential(string.IsNullOrEmpty(key) ? "no-key" : key), clientOptions)
            .GetChatClient(options.Model)
            .AsIChatClient();
    }

    public async Task<GroupJudgement> JudgeAsync(JudgeGroup group, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(group);
        group.Validate();
        var sw = Stopwatch.StartNew();
        var usage = new UsageCounter(_poolEndpoints);
        UsageCounter[] counters = [usage, _run];
        byte[] inputPng = PngCodec.Encode(Downscale(group.Input, _options.MaxImagePixels));

        var phase1 = await Task.WhenAll(group.Candidates.Select((c, i) => RubricAsync(inputPng, c, counters, cancellationToken)));
        var p1Scores = phase1.Select(r => r.Scores is null ? null : CriterionScores.FromArray(r.Scores.Select(v => v / 5.0).ToArray())).ToArray();
        int tiesBefore = GroupTies.Count(p1Scores.Select(s => s is null ? (double?)null : _options.Weights.Reward(s)));

        IReadOnlyDictionary<int, CriterionScores>? calibrated = null;
        string? calibrationError = null;
        int[] scored = Enumerable.Range(0, p1Scores.Length).Where(i => p1Scores[i] is not null).ToArray();
        if (_options.Calibrate && scored.Length >= 2)
        {
            (calibrated, calibrationError) = await CalibrateAsync(group, inputPng, p1Scores, scored, counters, cancellationToken);
        }
        else if (_options.Calibrate)
        {
            calibrationError = $"skipped: {scored.Length.ToString(CultureInfo.InvariantCulture)} scored candidate(s), calibration needs 2";
        }

        var candidates = new CandidateJudgement[group.Candidates.Count];
        for (int i = 0; i < candidates.Length; i++)
        {
            candidates[i] = p1Scores[i] is { } p1
                ? CandidateJudgement.Scored(i, p1, calibrated?.GetValueOrDefault(i), _options.Weights)
                : CandidateJudgement.Failure(i, $"phase 1: {phase1[i].Error}");
        }

        int tiesAfter = GroupTies.Count(candidates.Select(c => c.Failed ? null : c.Reward));
        var diagnostics = new GroupDiagnostics(tiesBefore, tiesAfter, candidates.Count(c => c.Failed), sw.Elapsed.TotalMilliseconds, usage.Snapshot(), calibrationError);
        return new GroupJudgement(group.Id, Name, candidates, diagnostics);
    }

    private sealed record RubricResult(double[]? Scores, string? Error);

    private async Task<RubricResult> RubricAsync(byte[] inputPng, LayerStack stack, UsageCounter[] counters, CancellationToken ct)
    {
        int n = stack.Count;
        var images = new List<(string Caption, byte[] Png)> { ("Input image:", inputPng) };
        bool strip = 1 + n + (_options.IncludeRecomposite ? 1 : 0) > _options.MaxImagesPerRequest;
        if (strip)
        {
            int cell = StripCell(n);
            var row = CalibrationGrid.Render([("", stack)], cell);
            images.Add(($"The {n.ToString(CultureInfo.InvariantCulture)} layers on white in one strip, left to right, background first:", PngCodec.Encode(row)));
        }
        else
        {
            for (int k = 0; k < n; k++)
            {
                string caption = $"Layer {(k + 1).ToString(CultureInfo.InvariantCulture)} of {n.ToString(CultureInfo.InvariantCulture)}{(k == 0 ? " (background)" : "")} on white:";
                images.Add((caption, PngCodec.Encode(Downscale(Compositor.FlattenOnWhite([stack[k]]), _options.MaxImagePixels))));
            }
        }

        if (_options.IncludeRecomposite)
        {
            images.Add(("Recomposite (all layers over white):", PngCodec.Encode(Downscale(stack.FlattenOnWhite(), _options.MaxImagePixels))));
        }

        string prompt = RubricPrompt.Render(new Dictionary<string, string>
        {
            ["layer_count"] = n.ToString(CultureInfo.InvariantCulture),
            ["recomposite_note"] = _options.IncludeRecomposite ? ", and finally the recomposite of all layers over white" : "",
        });
        string key = CacheKey("rubric", RubricPrompt, prompt, images);
        if (_cache?.TryRead(key, e => e.Kind == "rubric" && e.Scores is { Length: 5 } s && s.All(v => v >= 0 && v <= 5)) is { } hit)
        {
            Count(counters, c => c.CacheHit());
            return new RubricResult(hit.Scores, null);
        }

        var options = ChatOptions(VlmSchemas.Rubric(), "rubric_scores", logprobs: _options.LogitMode);
        var result = await _caller.CallAsync(Message(prompt, images), options, ParseRubric, counters, ct);
        if (result.Value is null)
        {
            return new RubricResult(null, result.Error);
        }

        _cache?.Write(Entry(key, "rubric", RubricPrompt, result) with { Scores = result.Value });
        return new RubricResult(result.Value, null);
    }

    private double[] ParseRubric(ChatResponse response)
    {
        string text = response.Text;
        int[] integers = VlmReplyParser.ParseRubric(text);
        if (_options.LogitMode && response.RawRepresentation is ChatCompletion completion && completion.ContentTokenLogProbabilities is { Count: > 0 } lp)
        {
            var tokens = lp.Select(t => new TokenLogprob(t.Token, t.TopLogProbabilities.Select(a => (a.Token, (double)a.LogProbability)).ToArray())).ToArray();
            return LogitScores.Expected(text, tokens, integers);
        }

        return integers.Select(i => (double)i).ToArray();
    }

    private async Task<(IReadOnlyDictionary<int, CriterionScores>? Scores, string? Error)> CalibrateAsync(
        JudgeGroup group, byte[] inputPng, CriterionScores?[] p1, int[] scored, UsageCounter[] counters, CancellationToken ct)
    {
        int columns = scored.Max(i => group.Candidates[i].Count);
        int rowsPerChunk = GridLayout.RowsThatFit(columns, _options.GridCellSize, _options.MaxGridPixels, _options.MaxGridRows);
        if (rowsPerChunk < 2)
        {
            Count(counters, c => c.Failure());
            return (null, $"failed: a grid of 2 rows x {columns.ToString(CultureInfo.InvariantCulture)} cells of {_options.GridCellSize.ToString(CultureInfo.InvariantCulture)} px exceeds MaxGridPixels; phase-1 scores used");
        }

        int anchor = scored.OrderBy(i => _options.Weights.Reward(p1[i]!)).ThenBy(i => i).ElementAt((scored.Length - 1) / 2);
        var plan = CalibrationChunks.Plan(scored, anchor, rowsPerChunk);
        var chunks = await Task.WhenAll(plan.Select(rows => GridAsync(group, inputPng, p1, rows, counters, ct)));
        if (chunks.FirstOrDefault(c => c.Scores is null) is { } failed)
        {
            return (null, $"failed: {failed.Error}; phase-1 scores used");
        }

        var merged = Rescale(plan, chunks.Select(c => c.Scores!).ToArray(), anchor);
        return (merged.ToDictionary(kv => kv.Key, kv => CriterionScores.FromArray(kv.Value.Select(v => v / 100.0).ToArray())), null);
    }

    /// <summary>
    /// Puts chunk scores (0..100) on one scale. With one chunk they are used as they are. With several,
    /// the anchor was scored in every chunk: per criterion, its mean over the chunks is the reference,
    /// each chunk is shifted by (reference - the anchor's score in that chunk), and results are clamped to
    /// 0..100. The anchor's own score is the reference.
    /// </summary>
    public static IReadOnlyDictionary<int, double[]> Rescale(IReadOnlyList<IReadOnlyList<int>> plan, IReadOnlyList<IReadOnlyDictionary<int, double[]>> chunks, int anchor)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(chunks);
        var result = new Dictionary<int, double[]>();
        if (chunks.Count == 1)
        {
            foreach (var (k, v) in chunks[0])
            {
                result[k] = (double[])v.Clone();
            }

            return result;
        }

        int nc = Criteria.Keys.Count;
        double[] reference = Enumerable.Range(0, nc).Select(j => chunks.Average(ch => ch[anchor][j])).ToArray();
        for (int c = 0; c < chunks.Count; c++)
        {
            double[] shift = Enumerable.Range(0, nc).Select(j => reference[j] - chunks[c][anchor][j]).ToArray();
            foreach (int i in plan[c].Where(i => i != anchor))
            {
                result[i] = Enumerable.Range(0, nc).Select(j => Math.Clamp(chunks[c][i][j] + shift[j], 0, 100)).ToArray();
            }
        }

        result[anchor] = reference;
        return result;
    }

    private sealed record GridResult(IReadOnlyDictionary<int, double[]>? Scores, string? Error);

    private async Task<GridResult> GridAsync(JudgeGroup group, byte[] inputPng, CriterionScores?[] p1, IReadOnlyList<int> rows, UsageCounter[] counters, CancellationToken ct)
    {
        string[] labels = rows.Select(CandidateLabels.Label).ToArray();
        var grid = CalibrationGrid.Render(rows.Select((i, r) => (labels[r], group.Candidates[i])).ToArray(), _options.GridCellSize);
        var images = new List<(string Caption, byte[] Png)> { ("Input image:", inputPng), ("Grid:", PngCodec.Encode(grid)) };
        var table = new StringBuilder();
        for (int r = 0; r < rows.Count; r++)
        {
            double[] s = p1[rows[r]]!.ToArray();
            table.Append(labels[r]).Append(": {")
                .AppendJoin(", ", Criteria.Keys.Select((k, j) => $"\"{k}\": {(s[j] * 5).ToString("0.###", CultureInfo.InvariantCulture)}"))
                .Append("}\n");
        }

        string prompt = GridPrompt.Render(new Dictionary<string, string>
        {
            ["count"] = rows.Count.ToString(CultureInfo.InvariantCulture),
            ["labels"] = string.Join(", ", labels),
            ["phase1"] = table.ToString().TrimEnd('\n'),
        });
        string key = CacheKey("grid", GridPrompt, prompt, images);
        if (_cache?.TryRead(key, e => e.Kind == "grid" && e.Grid is { } g && g.Count == labels.Length
                && labels.All(l => g.TryGetValue(l, out var v) && v is { Length: 5 } && v.All(x => x >= 0 && x <= 100))) is { } hit)
        {
            Count(counters, c => c.CacheHit());
            return new GridResult(ByIndex(hit.Grid!, rows, labels), null);
        }

        var options = ChatOptions(VlmSchemas.Grid(labels), "grid_scores", logprobs: false);
        var result = await _caller.CallAsync(Message(prompt, images), options, r => new Dictionary<string, double[]>(VlmReplyParser.ParseGrid(r.Text, labels)), counters, ct);
        if (result.Value is null)
        {
            return new GridResult(null, $"grid {string.Join("", labels)}: {result.Error}");
        }

        _cache?.Write(Entry(key, "grid", GridPrompt, result) with { Grid = result.Value });
        return new GridResult(ByIndex(result.Value, rows, labels), null);
    }

    private static Dictionary<int, double[]> ByIndex(Dictionary<string, double[]> byLabel, IReadOnlyList<int> rows, string[] labels) =>
        Enumerable.Range(0, rows.Count).ToDictionary(r => rows[r], r => byLabel[labels[r]]);

    private ChatOptions ChatOptions(System.Text.Json.JsonElement schema, string schemaName, bool logprobs)
    {
        var o = new ChatOptions
        {
            Temperature = 0,
            Seed = _options.Seed,
            MaxOutputTokens = _options.MaxOutputTokens,
            ResponseFormat = _options.UseJsonSchema ? ChatResponseFormat.ForJsonSchema(schema, schemaName) : null,
        };
        if (logprobs)
        {
            int top = _options.TopLogprobs;
            o.RawRepresentationFactory = _ => new ChatCompletionOptions { IncludeLogProbabilities = true, TopLogProbabilityCount = top };
        }

        return o;
    }

    private static List<ChatMessage> Message(string prompt, List<(string Caption, byte[] Png)> images)
    {
        var contents = new List<AIContent> { new TextContent(prompt) };
        foreach (var (caption, png) in images)
        {
            contents.Add(new TextContent(caption));
            contents.Add(new DataContent(png, "image/png"));
        }

        return [new ChatMessage(ChatRole.User, contents)];
    }

    private string CacheKey(string kind, PromptTemplate template, string prompt, List<(string Caption, byte[] Png)> images) =>
        JudgementCache.Key([
            CacheFormat, kind, template.Id, template.Hash, _options.Model, _endpoint, _options.CacheSettings, prompt,
            .. images.Select(i => i.Caption + "=" + JudgementCache.HashBytes(i.Png)),
        ]);

    private CachedJudgement Entry<T>(string key, string kind, PromptTemplate template, VlmCallResult<T> r)
        where T : class => new()
        {
            Key = key,
            Kind = kind,
            Model = _options.Model,
            Endpoint = r.Endpoint ?? _endpoint,
            Prompt = template.Id,
            TokensIn = r.TokensIn,
            TokensOut = r.TokensOut,
            CreatedUtc = DateTimeOffset.UtcNow,
        };

    private int StripCell(int layers)
    {
        int cell = _options.GridCellSize;
        while (cell > 16 && new GridLayout(1, layers, cell).Pixels > _options.MaxImagePixels)
        {
            cell = cell * 3 / 4;
        }

        return cell;
    }

    private static void Count(UsageCounter[] counters, Action<UsageCounter> a)
    {
        foreach (var c in counters)
        {
            a(c);
        }
    }

    /// <summary>The image scaled down (aspect kept) to at most <paramref name="maxPixels"/> pixels; unchanged when it fits.</summary>
    public static RgbaImage Downscale(RgbaImage image, long maxPixels)
    {
        ArgumentNullException.ThrowIfNull(image);
        if ((long)image.Width * image.Height <= maxPixels)
        {
            return image;
        }

        double s = Math.Sqrt((double)maxPixels / ((long)image.Width * image.Height));
        return ImageResize.Resize(image, Math.Max(1, (int)(image.Width * s)), Math.Max(1, (int)(image.Height * s)));
    }

    /// <summary>The endpoint as recorded in names, caches and reports: no user info, query or fragment.</summary>
    public static string PublicEndpoint(Uri endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        return endpoint.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped).TrimEnd('/');
    }

    public void Dispose() => _caller.Dispose();
}
