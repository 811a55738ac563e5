using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using StableLayers.Core;

namespace StableLayers.Metrics.Evaluation;

/// <summary>A sample that could not be evaluated, and why.</summary>
public sealed record EvalFailure([property: JsonPropertyName("id")] string Id, [property: JsonPropertyName("error")] string Error);

/// <summary>Aggregates of one group of samples: means, and optionally 95% intervals.</summary>
public sealed record AggregateSet(
    [property: JsonPropertyName("all")] SortedDictionary<string, double> All,
    [property: JsonPropertyName("by_layers")] SortedDictionary<string, SortedDictionary<string, double>> ByLayers);

public sealed record IntervalSet(
    [property: JsonPropertyName("all")] SortedDictionary<string, double[]> All,
    [property: JsonPropertyName("by_layers")] SortedDictionary<string, SortedDictionary<string, double[]>> ByLayers);

/// <summary>The content of metrics.json.</summary>
public sealed record EvalReport
{
    [JsonPropertyName("samples")]
    public required IReadOnlyList<SampleMetrics> Samples { get; init; }

    [JsonPropertyName("aggregate")]
    public required AggregateSet Aggregate { get; init; }

    [JsonPropertyName("aggregate_ci95")]
    public required IntervalSet AggregateCi95 { get; init; }

    [JsonPropertyName("failures")]
    public IReadOnlyList<EvalFailure> Failures { get; init; } = [];

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static EvalReport Build(IReadOnlyList<SampleMetrics> samples, IReadOnlyList<EvalFailure> failures)
    {
        ArgumentNullException.ThrowIfNull(samples);
        var ordered = samples.OrderBy(s => s.Id, StringComparer.Ordinal).ToList();
        var groups = ordered.GroupBy(s => s.LayersPred).OrderBy(g => g.Key).ToList();
        var byLayers = new SortedDictionary<string, SortedDictionary<string, double>>(StringComparer.Ordinal);
        var ciByLayers = new SortedDictionary<string, SortedDictionary<string, double[]>>(StringComparer.Ordinal);
        foreach (var g in groups)
        {
            string key = g.Key.ToString(CultureInfo.InvariantCulture);
            byLayers[key] = Aggregation.Means(g);
            ciByLayers[key] = Aggregation.Intervals(g);
        }

        return new EvalReport
        {
            Samples = ordered,
            Aggregate = new AggregateSet(Aggregation.Means(ordered), byLayers),
            AggregateCi95 = new IntervalSet(Aggregation.Intervals(ordered), ciByLayers),
            Failures = failures.OrderBy(f => f.Id, StringComparer.Ordinal).ToList(),
        };
    }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public static EvalReport FromJson(string json) =>
        JsonSerializer.Deserialize<EvalReport>(json, JsonOptions) ?? throw new JsonException("empty metrics.json");

    public void Write(string outDir)
    {
        Directory.CreateDirectory(outDir);
        AtomicFile.WriteAllText(Path.Combine(outDir, "metrics.json"), ToJson());
        AtomicFile.WriteAllText(Path.Combine(outDir, "report.md"), MarkdownReport.Render(this));
    }
}

/// <summary>report.md: tables of means with 95% bootstrap intervals by layer count, then per-sample rows.</summary>
public static class MarkdownReport
{
    private static readonly string[] HeadlineMetrics =
    [
        "best_match_l1", "layerd_rgb_l1_e0", "layerd_alpha_iou_e0", "layerd_rgb_l1_e5", "layerd_alpha_iou_e5",
        "bad_layers", "blank", "glazed", "artifact", "degenerate_bg", "evenness", "layer0_ssim", "layer0_inpaint_l1", "recon_l1",
        "judge_reward", "judge_background_inpainting",
    ];

    public static string Render(EvalReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine("# StableLayers evaluation");
        sb.AppendLine();
        sb.AppendLine(inv, $"{report.Samples.Count} samples evaluated, {report.Failures.Count} failed. Metric definitions: docs/EVALUATION.md. Intervals: 95% percentile bootstrap of the mean ({Aggregation.DefaultResamples} resamples).");
        sb.AppendLine();
        AppendGroup(sb, "All samples", report.Samples, report.Aggregate.All, report.AggregateCi95.All);
        foreach (var (layers, means) in report.Aggregate.ByLayers.OrderBy(kv => int.Parse(kv.Key, inv)))
        {
            var members = report.Samples.Where(s => s.LayersPred.ToString(inv) == layers).ToList();
            AppendGroup(sb, $"N = {layers} predicted layers", members, means, report.AggregateCi95.ByLayers[layers]);
        }

        sb.AppendLine("## Per sample");
        sb.AppendLine();
        sb.AppendLine("| id | N pred | N gt | best-match L1 | LayerD L1 e0 | LayerD IoU e0 | bad layers | evenness | layer0 SSIM | inpaint L1 | recon L1 |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var s in report.Samples)
        {
            sb.AppendLine(inv, $"| {s.Id} | {s.LayersPred} | {F(s.LayersGt)} | {F(s.BestMatchL1)} | {F(s.LayerdRgbL1?[0])} | {F(s.LayerdAlphaIou?[0])} | {s.BadLayers} | {F(s.Evenness)} | {F(s.Layer0Ssim)} | {F(s.Layer0InpaintL1)} | {F(s.ReconL1)} |");
        }

        if (report.Failures.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("## Samples that could not be evaluated");
            sb.AppendLine();
            foreach (var f in report.Failures)
            {
                sb.AppendLine(inv, $"- `{f.Id}`: {f.Error}");
            }
        }

        return sb.ToString();
    }

    private static void AppendGroup(StringBuilder sb, string title, IReadOnlyList<SampleMetrics> members, SortedDictionary<string, double> means, SortedDictionary<string, double[]> ci)
    {
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine(inv, $"## {title} (n = {members.Count})");
        sb.AppendLine();
        sb.AppendLine("| metric | mean | 95% CI |");
        sb.AppendLine("|---|---|---|");
        var names = HeadlineMetrics.Where(means.ContainsKey)
            .Concat(means.Keys.Where(k => k.StartsWith("best_match_l1_pred", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        foreach (var name in names)
        {
            var interval = ci.TryGetValue(name, out var c) ? $"[{F(c[0])}, {F(c[1])}]" : "";
            sb.AppendLine(inv, $"| {name} | {F(means[name])} | {interval} |");
        }

        sb.AppendLine();
    }

    private static string F(double? v) => v is double d ? d.ToString("0.0000", CultureInfo.InvariantCulture) : "-";

    private static string F(int? v) => v?.ToString(CultureInfo.InvariantCulture) ?? "-";
}
