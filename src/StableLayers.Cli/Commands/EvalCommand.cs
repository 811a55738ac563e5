using System.CommandLine;
using System.Diagnostics;
using StableLayers.Core;
using StableLayers.Judges;
using StableLayers.Metrics.Evaluation;

namespace StableLayers.Cli.Commands;

/// <summary><c>stable-layers eval --pred DIR [--gt DIR] --out DIR [--baseline DIR] [--judge rubric|vlm ...]</c>.</summary>
public static class EvalCommand
{
    public static Command Build()
    {
        var pred = new Option<DirectoryInfo>("--pred") { Description = "Folder of predicted samples (one layered folder per sample)", Required = true };
        var gt = new Option<DirectoryInfo?>("--gt") { Description = "Folder of ground-truth samples, matched by sub-folder name (optional)" };
        var output = new Option<DirectoryInfo>("--out") { Description = "Where metrics.json and report.md are written", Required = true };
        var jobs = new Option<int>("--jobs") { Description = "Samples evaluated in parallel (0 = one per core)", DefaultValueFactory = _ => 0 };
        var baseline = new Option<FileSystemInfo?>("--baseline") { Description = "metrics.json of a base model on the same inputs (or the eval folder holding it): also writes paired.json and paired.md, these predictions minus the base per sample, with paired 95% bootstrap intervals" };
        var judgeOptions = new JudgeCliOptions();
        var cmd = new Command("eval", "Evaluate decompositions: metrics.json and report.md with means and 95% bootstrap intervals by layer count; with --judge also the judge's reward and layer-0 inpainting score; with --baseline the paired difference to a base model")
        {
            pred, gt, output, jobs, baseline,
        };
        judgeOptions.AddTo(cmd);
        cmd.SetAction(async (parse, cancel) =>
        {
            StableLayersCli.ApplyGlobalOptions(parse);
            var predDir = parse.GetRequiredValue(pred).FullName;
            var gtDir = parse.GetValue(gt)?.FullName;
            var outDir = parse.GetRequiredValue(output).FullName;
            var err = parse.InvocationConfiguration.Error;
            var stdout = parse.InvocationConfiguration.Output;

            // Bad options fail before minutes of evaluation, not after.
            string? baselinePath = parse.GetValue(baseline) switch
            {
                null => null,
                DirectoryInfo d => Path.Combine(d.FullName, "metrics.json"),
                var f => f.FullName,
            };
            EvalReport? baseReport = baselinePath is null ? null : ReadBaseline(baselinePath);
            IJudge? judge = judgeOptions.Requested(parse) ? judgeOptions.Create(parse, out _) : null;
            try
            {
                var sw = Stopwatch.StartNew();
                int total = Directory.Exists(predDir) ? Directory.GetDirectories(predDir).Length : 0;
                var report = EvalRunner.Run(predDir, gtDir, parse.GetValue(jobs), new ProgressLine(err, total));
                if (judge is not null)
                {
                    var (judged, judgeFailures) = await EvalJudging.AddScoresAsync(report, predDir, gtDir, judge, cancel: cancel).ConfigureAwait(false);
                    report = judged;
                    foreach (var f in judgeFailures)
                    {
                        err.WriteLine($"not judged: {f.Id}: {f.Error}");
                    }
                }

                report.Write(outDir);
                stdout.WriteLine($"evaluated {report.Samples.Count} samples ({report.Failures.Count} failed) in {sw.Elapsed.TotalSeconds:F1}s{(judge is null ? "" : $", judged by {judge.Name}")}");
                foreach (var f in report.Failures)
                {
                    err.WriteLine($"bad sample: {f.Error}");
                }

                foreach (var (name, value) in report.Aggregate.All.Where(kv => !kv.Key.Contains("_pred", StringComparison.Ordinal) && !kv.Key.Contains("_e", StringComparison.Ordinal) || kv.Key.EndsWith("_e0", StringComparison.Ordinal)))
                {
                    stdout.WriteLine($"  {name,-28} {value:F4}");
                }

                stdout.WriteLine($"wrote {Path.Combine(outDir, "metrics.json")} and {Path.Combine(outDir, "report.md")}");
                if (baseReport is not null)
                {
                    var paired = PairedReport.Build(baseReport, report);
                    paired.Write(outDir);
                    stdout.WriteLine($"paired with {baselinePath}: {paired.Pairs} samples, tuned - base [95% CI]");
                    foreach (var (key, label, higher) in PairedReport.Headline)
                    {
                        if (paired.All.TryGetValue(key, out var d))
                        {
                            stdout.WriteLine($"  {label + (higher ? " (higher better)" : ""),-44} {d.Base,8:F4} -> {d.Tuned,8:F4}  {PairedReport.FormatDifference(d)}");
                        }
                    }

                    stdout.WriteLine($"wrote {Path.Combine(outDir, PairedReport.FileName)} and {Path.Combine(outDir, PairedReport.MarkdownFileName)}");
                }

                return report.Samples.Count == 0 ? StableLayersCli.ExitBadInput : StableLayersCli.ExitOk;
            }
            finally
            {
                (judge as IDisposable)?.Dispose();
            }
        });
        return cmd;
    }

    private static EvalReport ReadBaseline(string path)
    {
        if (!File.Exists(path))
        {
            throw new BadInputException(path, "--baseline: metrics.json not found");
        }

        try
        {
            return EvalReport.FromJson(File.ReadAllText(path));
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new BadInputException(path, $"--baseline: not a metrics.json written by eval: {e.Message}");
        }
    }
}
