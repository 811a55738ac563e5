using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using StableLayers.Core;
using StableLayers.Metrics.Evaluation;
using StableLayers.Training.Grpo;

namespace StableLayers.Training.Reporting;

/// <summary>
/// report.html for a GRPO run folder: reward, bad-layer and ratio/clip curves, both evaluation protocols of the
/// base against the tuned policy (labeled: held-out synthetic designs with ground truth, step 0 vs the last
/// evaluation, by layer count; unlabeled: real photos at requested layer counts 2..5, paired intervals, from
/// <c>bench/experiments/unlabeled_protocol.sh</c>), and the same inputs decomposed before and after. Images are
/// embedded, so the page opens offline and can be mailed around.
/// </summary>
public static class RunReport
{
    public const string FileName = "report.html";

    /// <summary>Where the unlabeled protocol leaves its results in a run folder: paired.json and the two grids.</summary>
    public const string UnlabeledFolder = "unlabeled";

    public const string UnlabeledBaseGrid = "grid_base.png";

    public const string UnlabeledTunedGrid = "grid_tuned.png";

    public static string Write(string runDir)
    {
        var steps = ReadLines<StepLog>(Path.Combine(runDir, GrpoRunFolder.MetricsFile));
        var evals = ReadLines<EvalLog>(Path.Combine(runDir, GrpoRunFolder.EvalFile));
        string configJson = File.Exists(Path.Combine(runDir, GrpoRunFolder.ConfigFile)) ? File.ReadAllText(Path.Combine(runDir, GrpoRunFolder.ConfigFile)) : "{}";
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>StableLayers run report</title><style>")
            .Append("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}")
            .Append("td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}")
            .Append(".better{color:#0a7d28}.worse{color:#b00020}img{max-width:100%;border:1px solid #ddd}.pair{display:flex;gap:12px}.pair div{flex:1}")
            .Append("pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}</style></head><body>");
        html.Append(CultureInfo.InvariantCulture, $"<h1>Stable-Layers GRPO run</h1><p>Run folder <code>{Enc(Path.GetFullPath(runDir))}</code>: {steps.Count} steps");
        if (steps.Count > 0)
        {
            html.Append(CultureInfo.InvariantCulture, $", {steps.Sum(s => s.SamplingSeconds + s.JudgingSeconds + s.UpdateSeconds) / 60:F1} min of sampling, judging and updates");
        }

        html.Append(".</p>");
        AppendEvaluation(html, evals);
        AppendUnlabeled(html, runDir);
        if (steps.Count > 0)
        {
            AppendCurves(html, steps, evals);
            AppendRatioTable(html, steps);
        }

        AppendGrids(html, runDir, evals);
        html.Append("<h2>Settings</h2><pre>").Append(Enc(configJson)).Append("</pre></body></html>");
        string path = Path.Combine(runDir, FileName);
        AtomicFile.WriteAllText(path, html.ToString());
        return path;
    }

    private static void AppendEvaluation(StringBuilder html, IReadOnlyList<EvalLog> evals)
    {
        html.Append("<h2>Labeled protocol: held-out designs with ground truth, base vs tuned</h2>");
        if (evals.Count < 1)
        {
            html.Append("<p>No evaluation was run (data.heldout_count = 0 or run.eval_every = 0).</p>");
            return;
        }

        var b = evals[0];
        var t = evals[^1];
        html.Append(CultureInfo.InvariantCulture, $"<p>{b.Samples} held-out synthetic designs with ground truth, deterministic sampling, same seeds for both. Base = step {b.Step}, tuned = step {t.Step}. Lower is better except where marked ↑.</p>");
        html.Append("<table><tr><th>metric</th><th>base</th><th>tuned</th><th>change</th></tr>");
        void Row(string name, double? bv, double? tv, bool higherIsBetter = false, string format = "F4")
        {
            string change = bv is { } x && tv is { } y ? (y - x).ToString("+0.0000;-0.0000;0", CultureInfo.InvariantCulture) : "";
            bool better = bv is { } x2 && tv is { } y2 && (higherIsBetter ? y2 > x2 : y2 < x2);
            bool worse = bv is { } x3 && tv is { } y3 && (higherIsBetter ? y3 < x3 : y3 > x3);
            string cls = better ? "better" : worse ? "worse" : "";
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{Enc(name)}{(higherIsBetter ? " ↑" : "")}</td><td>{Fmt(bv, format)}</td><td>{Fmt(tv, format)}</td><td class=\"{cls}\">{change}</td></tr>");
        }

        Row("best-match L1 (all)", b.BestMatchL1, t.BestMatchL1);
        foreach (var n in b.BestMatchL1ByLayers.Keys.Union(t.BestMatchL1ByLayers.Keys).OrderBy(k => int.Parse(k, CultureInfo.InvariantCulture)))
        {
            Row($"best-match L1, N = {n}", b.BestMatchL1ByLayers.GetValueOrDefault(n), t.BestMatchL1ByLayers.GetValueOrDefault(n));
        }

        Row("bad layers per decomposition", b.BadLayers, t.BadLayers, format: "F3");
        Row("reconstruction L1", b.ReconL1, t.ReconL1);
        Row("evenness", b.Evenness, t.Evenness, higherIsBetter: true);
        Row("layer-0 SSIM", b.Layer0Ssim, t.Layer0Ssim, higherIsBetter: true);
        Row("layer-0 inpainting L1", b.Layer0InpaintL1, t.Layer0InpaintL1);
        Row("judge reward", b.RewardMean, t.RewardMean, higherIsBetter: true);
        html.Append("</table>");
    }

    private static void AppendUnlabeled(StringBuilder html, string runDir)
    {
        html.Append("<h2>Unlabeled protocol: real photos, base vs tuned</h2>");
        string dir = Path.Combine(runDir, UnlabeledFolder);
        string path = Path.Combine(dir, PairedReport.FileName);
        if (!File.Exists(path))
        {
            html.Append(CultureInfo.InvariantCulture, $"<p>Not run for this run yet: <code>bench/experiments/unlabeled_protocol.sh {Enc(runDir)}</code> decomposes the photos of <code>samples/photos-dev</code> with the base and the tuned LoRA and writes <code>{UnlabeledFolder}/{PairedReport.FileName}</code>; then <code>stable-layers report --run-dir {Enc(runDir)}</code> shows it here.</p>");
            return;
        }

        PairedReport paired;
        try
        {
            paired = PairedReport.Read(path);
        }
        catch (BadInputException e)
        {
            html.Append("<p>Could not read the unlabeled results: ").Append(Enc(e.Message)).Append("</p>");
            return;
        }

        html.Append(CultureInfo.InvariantCulture, $"<p>{paired.Pairs} real photos without ground truth, each decomposed by both models with the same seed at a requested layer count cycling 2..5 (docs/EVALUATION.md, \"Unlabeled protocol\"). Change = tuned - base with its paired 95% bootstrap interval; green or red only when the interval excludes 0. ↑ marks higher is better.</p>");
        html.Append("<table><tr><th>metric</th><th>n</th><th>base</th><th>tuned</th><th>change [95% CI]</th></tr>");
        void Row(string label, bool higher, PairedDifference d)
        {
            bool sure = d.Ci95[0] > 0 || d.Ci95[1] < 0;
            bool better = sure && (higher ? d.Difference > 0 : d.Difference < 0);
            string cls = !sure ? "" : better ? "better" : "worse";
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{Enc(label)}{(higher ? " ↑" : "")}</td><td>{d.Pairs}</td><td>{d.Base:F4}</td><td>{d.Tuned:F4}</td><td class=\"{cls}\">{Enc(PairedReport.FormatDifference(d))}</td></tr>");
        }

        foreach (var (key, label, higher) in PairedReport.Headline)
        {
            if (paired.All.TryGetValue(key, out var d))
            {
                Row(label, higher, d);
            }
        }

        foreach (var (n, set) in paired.ByLayers.OrderBy(kv => int.Parse(kv.Key, CultureInfo.InvariantCulture)))
        {
            if (set.TryGetValue("bad_layers", out var d))
            {
                Row($"bad layers / decomposition, N = {n}", false, d);
            }
        }

        html.Append("</table>");
        string before = Path.Combine(dir, UnlabeledBaseGrid), after = Path.Combine(dir, UnlabeledTunedGrid);
        if (File.Exists(before) && File.Exists(after))
        {
            html.Append("<div class=\"pair\"><div><h3>base</h3>");
            Img(html, File.ReadAllBytes(before), "base decompositions of photos");
            html.Append("</div><div><h3>tuned</h3>");
            Img(html, File.ReadAllBytes(after), "tuned decompositions of photos");
            html.Append("</div></div>");
        }
    }

    private static void AppendCurves(StringBuilder html, IReadOnlyList<StepLog> steps, IReadOnlyList<EvalLog> evals)
    {
        static IReadOnlyList<(long, double)> Series(IEnumerable<(long, double)> points) => points.Where(p => double.IsFinite(p.Item2)).ToList();
        html.Append("<h2>Training curves</h2>");
        var reward = new Dictionary<string, IReadOnlyList<(long, double)>>
        {
            ["reward (training samples)"] = Series(steps.Select(s => ((long)s.Step + 1, s.RewardMean))),
            ["phase-1 reward"] = Series(steps.Select(s => ((long)s.Step + 1, s.Phase1RewardMean))),
            ["held-out reward (eval)"] = Series(evals.Where(e => e.RewardMean is not null).Select(e => ((long)e.Step, e.RewardMean!.Value))),
        };
        Img(html, LossCurvePlot.Render("reward", reward, logY: false, yLabel: "reward (moving average)", pointsPerWindow: 10), "reward curve");
        var bad = new Dictionary<string, IReadOnlyList<(long, double)>>
        {
            ["bad layers / decomposition (training samples)"] = Series(steps.Select(s => ((long)s.Step + 1, s.BadLayersPerDecomposition))),
            ["bad layers / decomposition (held-out eval)"] = Series(evals.Select(e => ((long)e.Step, e.BadLayers))),
        };
        Img(html, LossCurvePlot.Render("bad layers per decomposition", bad, logY: false, yLabel: "bad layers (moving average)", pointsPerWindow: 10), "bad layers curve");
        var ratio = new Dictionary<string, IReadOnlyList<(long, double)>>
        {
            ["std(log r)"] = Series(steps.Select(s => ((long)s.Step + 1, s.LogRatioStd))),
            ["clip fraction"] = Series(steps.Select(s => ((long)s.Step + 1, s.ClipFraction))),
            ["zero-std group ratio"] = Series(steps.Select(s => ((long)s.Step + 1, s.ZeroStdRatio))),
        };
        Img(html, LossCurvePlot.Render("ratio statistics", ratio, logY: false, yLabel: "value (moving average)", pointsPerWindow: 10), "ratio statistics");
    }

    private static void AppendRatioTable(StringBuilder html, IReadOnlyList<StepLog> steps)
    {
        double Avg(Func<StepLog, double> f) => steps.Select(f).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();
        html.Append("<table><tr><th>over all steps</th><th>mean</th></tr>");
        foreach (var (name, value, format) in new (string, double, string)[]
        {
            ("reward std within the step", Avg(s => s.RewardStd), "F4"),
            ("ties per step before calibration", Avg(s => s.TiesBefore), "F1"),
            ("ties per step after calibration", Avg(s => s.TiesAfter), "F1"),
            ("ratio mean", Avg(s => s.RatioMean), "F6"),
            ("std(log r)", Avg(s => s.LogRatioStd), "E2"),
            ("clip fraction", Avg(s => s.ClipFraction), "P1"),
            ("gradient norm", Avg(s => s.GradNorm), "F3"),
            ("sampling s / step", Avg(s => s.SamplingSeconds), "F2"),
            ("judging s / step", Avg(s => s.JudgingSeconds), "F2"),
            ("update s / step", Avg(s => s.UpdateSeconds), "F2"),
        })
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{Enc(name)}</td><td>{value.ToString(format, CultureInfo.InvariantCulture)}</td></tr>");
        }

        html.Append("</table>");
    }

    private static void AppendGrids(StringBuilder html, string runDir, IReadOnlyList<EvalLog> evals)
    {
        if (evals.Count < 1)
        {
            return;
        }

        string before = HeldoutEvaluation.GridPath(runDir, evals[0].Step), after = HeldoutEvaluation.GridPath(runDir, evals[^1].Step);
        if (!File.Exists(before) || !File.Exists(after))
        {
            return;
        }

        html.Append("<h2>The same held-out inputs, before and after</h2><p>Each row: the input, then its layers (background first) on a checkerboard.</p><div class=\"pair\">");
        html.Append(CultureInfo.InvariantCulture, $"<div><h3>base (step {evals[0].Step})</h3>");
        Img(html, File.ReadAllBytes(before), "base decompositions");
        html.Append(CultureInfo.InvariantCulture, $"</div><div><h3>tuned (step {evals[^1].Step})</h3>");
        Img(html, File.ReadAllBytes(after), "tuned decompositions");
        html.Append("</div></div>");
    }

    private static void Img(StringBuilder html, byte[] png, string alt) =>
        html.Append("<p><img alt=\"").Append(Enc(alt)).Append("\" src=\"data:image/png;base64,").Append(Convert.ToBase64String(png)).Append("\"></p>");

    private static string Fmt(double? v, string format) => v is { } x ? x.ToString(format, CultureInfo.InvariantCulture) : "–";

    private static string Enc(string s) => WebUtility.HtmlEncode(s);

    private static IReadOnlyList<T> ReadLines<T>(string path) =>
        File.Exists(path)
            ? File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => JsonSerializer.Deserialize<T>(l)!).ToList()
            : [];
}
