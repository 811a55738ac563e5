using System.CommandLine;
using System.Diagnostics;
using StableLayers.Metrics.Evaluation;

namespace StableLayers.Cli.Commands;

/// <summary><c>stable-layers eval --pred DIR [--gt DIR] --out DIR</c>.</summary>
public static class EvalCommand
{
    public static Command Build()
    {
        var pred = new Option<DirectoryInfo>("--pred") { Description = "Folder of predicted samples (one layered folder per sample)", Required = true };
        var gt = new Option<DirectoryInfo?>("--gt") { Description = "Folder of ground-truth samples, matched by sub-folder name (optional)" };
        var output = new Option<DirectoryInfo>("--out") { Description = "Where metrics.json and report.md are written", Required = true };
        var jobs = new Option<int>("--jobs") { Description = "Samples evaluated in parallel (0 = one per core)", DefaultValueFactory = _ => 0 };
        var cmd = new Command("eval", "Evaluate decompositions: metrics.json and report.md with means and 95% bootstrap intervals by layer count")
        {
            pred, gt, output, jobs,
        };
        cmd.SetAction(parse =>
        {
            StableLayersCli.ApplyGlobalOptions(parse);
            var predDir = parse.GetRequiredValue(pred).FullName;
            var gtDir = parse.GetValue(gt)?.FullName;
            var outDir = parse.GetRequiredValue(output).FullName;
            var err = parse.InvocationConfiguration.Error;
            var sw = Stopwatch.StartNew();
            int total = Directory.Exists(predDir) ? Directory.GetDirectories(predDir).Length : 0;
            var report = EvalRunner.Run(predDir, gtDir, parse.GetValue(jobs), new ProgressLine(err, total));
            report.Write(outDir);
            var stdout = parse.InvocationConfiguration.Output;
            stdout.WriteLine($"evaluated {report.Samples.Count} samples ({report.Failures.Count} failed) in {sw.Elapsed.TotalSeconds:F1}s");
            foreach (var f in report.Failures)
            {
                err.WriteLine($"bad sample: {f.Error}");
            }

            foreach (var (name, value) in report.Aggregate.All.Where(kv => !kv.Key.Contains("_pred", StringComparison.Ordinal) && !kv.Key.Contains("_e", StringComparison.Ordinal) || kv.Key.EndsWith("_e0", StringComparison.Ordinal)))
            {
                stdout.WriteLine($"  {name,-22} {value:F4}");
            }

            stdout.WriteLine($"wrote {Path.Combine(outDir, "metrics.json")} and {Path.Combine(outDir, "report.md")}");
            return report.Samples.Count == 0 ? StableLayersCli.ExitBadInput : StableLayersCli.ExitOk;
        });
        return cmd;
    }
}
