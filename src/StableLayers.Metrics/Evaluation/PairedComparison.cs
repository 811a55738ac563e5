using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using StableLayers.Core;

namespace StableLayers.Metrics.Evaluation;

/// <summary>One metric, tuned minus base, over the samples where both models have a value.</summary>
/// <param name="Pairs">Samples (matched by id) where the metric is defined for both models.</param>
/// <param name="Ci95">95% percentile bootstrap interval of <paramref name="Difference"/>, resampling the pairs.</param>
public sealed record PairedDifference(
    [property: JsonPropertyName("n")] int Pairs,
    [property: JsonPropertyName("base")] double Base,
    [property: JsonPropertyName("tuned")] double Tuned,
    [property: JsonPropertyName("diff")] double Difference,
    [property: JsonPropertyName("ci95")] double[] Ci95);

/// <summary>
/// paired.json: a tuned model against a base on the same inputs (same ids, same seeds, same requested layer count).
/// Differences are taken per sample and the bootstrap resamples whole pairs, so the sample-to-sample spread that
/// dominates unpaired intervals cancels. Stratified by the base's predicted layer count.
/// </summary>
public sealed record PairedReport
{
    public const string FileName = "paired.json";
    public const string MarkdownFileName = "paired.md";

    /// <summary>The metrics shown in paired.md and in the run report, in this order (the json holds every metric).</summary>
    public static IReadOnlyList<(string Key, string Label, bool HigherIsBetter)> Headline { get; } =
    [
        ("bad_layers", "bad layers / decomposition", false),
        ("blank", "blank layers", false),
        ("glazed", "glazed layers", false),
        ("artifact", "artifact layers", false),
        ("degenerate_bg", "degenerate layer 0", false),
        ("evenness", "evenness", true),
        ("judge_background_inpainting", "layer-0 inpainting (judge)", true),
        ("layer0_inpaint_l1", "layer-0 inpainting L1 (ground truth)", false),
        ("layer0_ssim", "layer-0 SSIM (ground truth)", true),
        ("best_match_l1", "best-match L1 (ground truth)", false),
        ("recon_l1", "reconstruction L1", false),
        ("judge_reward", "judge reward", true),
    ];

    /// <summary>Number of ids evaluated by both models at the same layer count.</summary>
    [JsonPropertyName("pairs")]
    public required int Pairs { get; init; }

    /// <summary>Ids only one side has, or that the two sides decomposed into different layer counts (left out).</summary>
    [JsonPropertyName("unpaired")]
    public required IReadOnlyList<string> Unpaired { get; init; }

    [JsonPropertyName("resamples")]
    public required int Resamples { get; init; }

    [JsonPropertyName("all")]
    public required SortedDictionary<string, PairedDifference> All { get; init; }

    [JsonPropertyName("by_layers")]
    public required SortedDictionary<string, SortedDictionary<string, PairedDifference>> ByLayers { get; init; }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Pairs <paramref name="tuned"/>'s samples with <paramref name="baseline"/>'s by id and bootstraps each metric's mean difference.</summary>
    public static PairedReport Build(EvalReport baseline, EvalReport tuned, int resamples = Aggregation.DefaultResamples, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(baseline);
        ArgumentNullException.ThrowIfNull(tuned);
        var byId = baseline.Samples.ToDictionary(s => s.Id, StringComparer.Ordinal);
        var pairs = new List<(SampleMetrics Base, SampleMetrics Tuned)>();
        var unpaired = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var t in tuned.Samples)
        {
            // A different layer count is a different task; its difference would mean nothing.
            if (byId.TryGetValue(t.Id, out var b) && b.LayersPred == t.LayersPred)
            {
                pairs.Add((b, t));
            }
            else
            {
                unpaired.Add(t.Id);
            }
        }

        unpaired.UnionWith(byId.Keys.Except(tuned.Samples.Select(s => s.Id), StringComparer.Ordinal));
        var byLayers = new SortedDictionary<string, SortedDictionary<string, PairedDifference>>(StringComparer.Ordinal);
        foreach (var g in pairs.GroupBy(p => p.Base.LayersPred).OrderBy(g => g.Key))
        {
            byLayers[g.Key.ToString(CultureInfo.InvariantCulture)] = Differences(g.ToList(), resamples, seed);
        }

        return new PairedReport
        {
            Pairs = pairs.Count,
            Unpaired = unpaired.ToList(),
            Resamples = resamples,
            All = Differences(pairs, resamples, seed),
            ByLayers = byLayers,
        };
    }

    private static SortedDictionary<string, PairedDifference> Differences(IReadOnlyList<(SampleMetrics Base, SampleMetrics Tuned)> pairs, int resamples, int seed)
    {
        var values = new Dictionary<string, (List<double> B, List<double> T)>(StringComparer.Ordinal);
        foreach (var (b, t) in pairs)
        {
            var tv = t.Scalars().ToDictionary(x => x.Name, x => x.Value, StringComparer.Ordinal);
            foreach (var (name, bValue) in b.Scalars())
            {
                if (bValue is double x && double.IsFinite(x) && tv.GetValueOrDefault(name) is double y && double.IsFinite(y))
                {
                    if (!values.TryGetValue(name, out var lists))
                    {
                        values[name] = lists = ([], []);
                    }

                    lists.B.Add(x);
                    lists.T.Add(y);
                }
            }
        }

        var result = new SortedDictionary<string, PairedDifference>(StringComparer.Ordinal);
        foreach (var (name, (b, t)) in values)
        {
            var d = b.Zip(t, (x, y) => y - x).ToList();
            result[name] = new PairedDifference(d.Count, b.Average(), t.Average(), d.Average(), Aggregation.BootstrapCi(d, resamples, seed));
        }

        return result;
    }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public static PairedReport FromJson(string json) =>
        JsonSerializer.Deserialize<PairedReport>(json, JsonOptions) ?? throw new JsonException("empty paired.json");

    /// <summary>Reads a paired.json; a missing or malformed file is a <see cref="BadInputException"/>.</summary>
    public static PairedReport Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new BadInputException(path, "paired.json not found");
        }

        try
        {
            return FromJson(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new BadInputException(path, $"not a paired.json: {e.Message}");
        }
    }

    public void Write(string outDir)
    {
        Directory.CreateDirectory(outDir);
        AtomicFile.WriteAllText(Path.Combine(outDir, FileName), ToJson());
        AtomicFile.WriteAllText(Path.Combine(outDir, MarkdownFileName), ToMarkdown());
    }

    /// <summary>The headline metrics present, overall and by layer count: base, tuned, tuned - base [95% CI].</summary>
    public string ToMarkdown()
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("# Tuned vs base, paired");
        sb.AppendLine();
        sb.AppendLine(inv, $"{Pairs} samples decomposed by both models at the same layer count; intervals: 95% percentile bootstrap of the mean per-sample difference ({Resamples} resamples of the pairs).");
        if (Unpaired.Count > 0)
        {
            sb.AppendLine(inv, $"Left out (on one side only, or at different layer counts): {string.Join(", ", Unpaired)}.");
        }

        sb.AppendLine();
        AppendTable(sb, "All samples", All);
        foreach (var (n, set) in ByLayers.OrderBy(kv => int.Parse(kv.Key, inv)))
        {
            AppendTable(sb, $"N = {n}", set);
        }

        return sb.ToString();
    }

    private static void AppendTable(StringBuilder sb, string title, SortedDictionary<string, PairedDifference> set)
    {
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine(inv, $"## {title}");
        sb.AppendLine();
        sb.AppendLine("| metric | n | base | tuned | tuned - base [95% CI] |");
        sb.AppendLine("|---|---|---|---|---|");
        foreach (var (key, label, higher) in Headline)
        {
            if (set.TryGetValue(key, out var d))
            {
                sb.AppendLine(inv, $"| {label}{(higher ? " (higher is better)" : "")} | {d.Pairs} | {d.Base:F4} | {d.Tuned:F4} | {FormatDifference(d)} |");
            }
        }

        sb.AppendLine();
    }

    /// <summary>"+0.0123 [-0.0010, +0.0250]".</summary>
    public static string FormatDifference(PairedDifference d)
    {
        ArgumentNullException.ThrowIfNull(d);
        return string.Create(CultureInfo.InvariantCulture, $"{d.Difference:+0.0000;-0.0000;0.0000} [{d.Ci95[0]:+0.0000;-0.0000;0.0000}, {d.Ci95[1]:+0.0000;-0.0000;0.0000}]");
    }
}
