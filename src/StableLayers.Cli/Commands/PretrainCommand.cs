using System.CommandLine;
using StableLayers.Core;
using StableLayers.Model;
using StableLayers.Training.Checkpoints;
using StableLayers.Training.Pretraining;
using StableLayers.Training.Reporting;

namespace StableLayers.Cli.Commands;

/// <summary><c>stable-layers pretrain --config configs/tiny.json --out models/tiny-base [--run-dir DIR] [--resume] [--max-steps N] [--device D]</c>.</summary>
public static class PretrainCommand
{
    public static Command Build()
    {
        var config = new Option<FileInfo>("--config") { Description = "Model preset with a \"pretrain\" section", DefaultValueFactory = _ => new FileInfo(Path.Combine("configs", "tiny.json")) };
        var output = new Option<DirectoryInfo>("--out") { Description = "Where the finished model folder is written", Required = true };
        var runDir = new Option<DirectoryInfo?>("--run-dir") { Description = "Checkpoints and logs (default: <out>.run)" };
        var resume = new Option<bool>("--resume") { Description = "Continue from the run folder's last checkpoint" };
        var maxSteps = new Option<int?>("--max-steps") { Description = "Stop after this many steps in this call (checkpointed; continue with --resume)" };
        var initFrom = new Option<DirectoryInfo?>("--init-from") { Description = "Start from a trained model folder (continued pretraining: transformer stage, VAE kept)" };
        var device = DeviceOption.Create();
        var cmd = new Command("pretrain", "Pretrain the tiny base model (RGBA VAE, then transformer + text encoder) on synthetic designs")
        {
            config, output, runDir, resume, maxSteps, initFrom, device,
        };
        cmd.SetAction((parse, cancel) =>
        {
            StableLayersCli.ApplyGlobalOptions(parse);
            var computeDevice = DeviceOption.Resolve(parse, device);
            var cfg = LayeredModelConfig.Load(parse.GetRequiredValue(config).FullName);
            if (cfg.TextEncoder is null || cfg.Pretrain is null)
            {
                throw new BadInputException(parse.GetRequiredValue(config).FullName, "pretraining needs a tiny preset with \"text_encoder\" and \"pretrain\" sections");
            }

            string outDir = parse.GetRequiredValue(output).FullName;
            string run = parse.GetValue(runDir)?.FullName ?? outDir.TrimEnd('/') + ".run";
            RunFolder.EnsureWritable(run);
            var stdout = parse.InvocationConfiguration.Output;
            var trainer = new TinyPretrainer(cfg, run, stdout) { MaxStepsThisRun = parse.GetValue(maxSteps), InitFrom = parse.GetValue(initFrom)?.FullName, Device = computeDevice };
            var state = trainer.Run(parse.GetValue(resume), cancel);
            SaveCurves(run, state);
            if (state.Stage != PretrainStages.Done)
            {
                stdout.WriteLine($"stopped at stage {state.Stage}, step {state.Step}; continue with --resume (checkpoint in {PretrainCheckpoint.PathIn(run)})");
                return Task.FromResult(cancel.IsCancellationRequested ? StableLayersCli.ExitCancelled : StableLayersCli.ExitOk);
            }

            ExportModel(run, outDir);
            stdout.WriteLine($"pretraining done in {state.Seconds / 60:F1} min; model in {outDir}, curves in {run}");
            return Task.FromResult(StableLayersCli.ExitOk);
        });
        return cmd;
    }

    private static void SaveCurves(string run, PretrainState state)
    {
        var series = new Dictionary<string, IReadOnlyList<(long, double)>>
        {
            ["VAE reconstruction (L1)"] = state.VaeLosses.Select(p => ((long)p[0], p[1])).ToList(),
            ["transformer flow matching (MSE)"] = state.TransformerLosses.Select(p => ((long)p[0], p[1])).ToList(),
            ["VAE decoder fine-tuning (L1)"] = state.DecoderLosses.Select(p => ((long)p[0], p[1])).ToList(),
        };
        LossCurvePlot.Save(Path.Combine(run, "loss_curve.png"), "tiny base pretraining", series);
    }

    private static void ExportModel(string run, string outDir)
    {
        string model = Path.Combine(PretrainCheckpoint.PathIn(run), "model");
        Directory.CreateDirectory(outDir);
        foreach (var file in Directory.GetFiles(model, "*", SearchOption.AllDirectories))
        {
            string dest = Path.Combine(outDir, Path.GetRelativePath(model, file));
            Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
            File.Copy(file, dest, overwrite: true);
        }

        File.Copy(Path.Combine(run, "loss_curve.png"), Path.Combine(outDir, "loss_curve.png"), overwrite: true);
    }
}
