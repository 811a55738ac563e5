using System.CommandLine;
using StableLayers.Core;
using StableLayers.Training.Grpo;
using StableLayers.Training.Reporting;

namespace StableLayers.Cli.Commands;

/// <summary><c>stable-layers report --run-dir DIR</c>: (re)writes report.html for a GRPO run folder.</summary>
public static class ReportCommand
{
    public static Command Build()
    {
        var runDir = new Option<DirectoryInfo>("--run-dir") { Description = "A run folder written by `train`", Required = true };
        var cmd = new Command("report", "Write report.html (curves, base vs tuned evaluation, before/after grids) for a training run") { runDir };
        cmd.SetAction(parse =>
        {
            string run = parse.GetRequiredValue(runDir).FullName;
            if (!File.Exists(Path.Combine(run, GrpoRunFolder.MetricsFile)))
            {
                throw new BadInputException(run, $"not a training run folder (no {GrpoRunFolder.MetricsFile})");
            }

            parse.InvocationConfiguration.Output.WriteLine($"report: {RunReport.Write(run)}");
            return StableLayersCli.ExitOk;
        });
        return cmd;
    }
}
