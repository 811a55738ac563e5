using System.CommandLine;
using System.Globalization;
using StableLayers.Core;
using StableLayers.Distributed;
using StableLayers.Judges;
using StableLayers.Model;
using StableLayers.Training.Grpo;
using StableLayers.Training.Reporting;

namespace StableLayers.Cli.Commands;

/// <summary>
/// <c>stable-layers train --config FILE --run-dir DIR [--resume] [--steps N] [--images DIR] [--device D] [--distributed B]</c>:
/// Flow-GRPO on LoRA adapters, on one process or as one rank of a data-parallel run (<c>mpirun -np N stable-layers train ...</c>).
/// </summary>
public static class TrainCommand
{
    public static Command Build()
    {
        var config = new Option<FileInfo>("--config") { Description = "GRPO settings (TOML)", DefaultValueFactory = _ => new FileInfo(Path.Combine("configs", "tiny-grpo.toml")) };
        var runDir = new Option<DirectoryInfo>("--run-dir") { Description = "Run folder: metrics.jsonl, eval.jsonl, grids/, checkpoint/, lora.safetensors", Required = true };
        var resume = new Option<bool>("--resume") { Description = "Continue from the run folder's last checkpoint" };
        var steps = new Option<int?>("--steps") { Description = "Stop once this many optimizer steps are done in total (checkpointed; continue with --resume)" };
        var images = new Option<DirectoryInfo?>("--images") { Description = "Train on this folder of unlabeled images instead of the config's data.source" };
        var device = DeviceOption.Create();
        var distributed = new Option<string?>("--distributed") { Description = $"Data-parallel backend, overriding the config's distributed.backend: {SettingEnum.Choices<DistributedBackend>()}" };
        var cmd = new Command("train", "Fine-tune the decomposition model with Flow-GRPO (LoRA) scored by the judge") { config, runDir, resume, steps, images, device, distributed };
        cmd.SetAction(async (parse, cancel) =>
        {
            StableLayersCli.ApplyGlobalOptions(parse);
            var explicitDevice = DeviceOption.ResolveGiven(parse, device);
            string configPath = parse.GetRequiredValue(config).FullName;
            var cfg = GrpoConfig.Load(configPath);
            var computeDevice = explicitDevice ?? ComputeDevice.Parse(cfg.Device, $"{configPath}: device");
            string run = parse.GetRequiredValue(runDir).FullName;
            string baseModel = ResolveModel(cfg.Model.Base, configPath);
            string? imageDir = parse.GetValue(images)?.FullName ?? cfg.Data.ImageFolder;
            var stdout = parse.InvocationConfiguration.Output;
            string? backendName = parse.GetValue(distributed);
            var backend = backendName is null ? cfg.Distributed.Backend : SettingEnum.Parse<DistributedBackend>(backendName, "--distributed");
            using var communicator = Communicators.Create(backend, computeDevice.IsCuda);
            computeDevice = RankDevice(computeDevice, communicator);
            bool lead = communicator.Rank == 0;

            // Only rank 0 writes the run folder, the judge cache included: other ranks judge uncached.
            var judge = JudgeFactory.Create(cfg.Judge, lead ? Path.Combine(run, "judge-cache") : null, stdout);
            int resolution = BaseConfig(baseModel).Resolution;
            var trainer = new GrpoTrainer(cfg, baseModel, run, judge, stdout, computeDevice)
            {
                Images = imageDir is null ? null : TrainingImages.Folder(imageDir, resolution, cfg.Seed),
                Progress = lead ? new SyncProgress<StepLog>(s => stdout.WriteLine(Line(s, cfg.Steps))) : null,
                Communicator = communicator,
            };
            try
            {
                var state = await trainer.RunAsync(parse.GetValue(resume), parse.GetValue(steps), cancel);
                if (!lead)
                {
                    return cancel.IsCancellationRequested ? StableLayersCli.ExitCancelled : StableLayersCli.ExitOk;
                }

                stdout.WriteLine($"report: {RunReport.Write(run)}");
                stdout.WriteLine(state.Step >= cfg.Steps
                    ? $"training done: {state.Step} steps in {state.Seconds / 60:F1} min; LoRA in {Path.Combine(run, GrpoRunFolder.LoraFile)}"
                    : $"stopped at step {state.Step}/{cfg.Steps}; continue with --resume");
                return cancel.IsCancellationRequested ? StableLayersCli.ExitCancelled : StableLayersCli.ExitOk;
            }
            finally
            {
                (judge as IDisposable)?.Dispose();
            }
        });
        return cmd;
    }

    /// <summary>
    /// With several ranks on CUDA each rank trains on its machine's GPU number local-rank (the device NCCL joins), so
    /// <c>--device cuda</c> on every rank of <c>mpirun -np N</c> spreads them over the N GPUs; a machine with fewer GPUs
    /// than ranks is the usual one-line device error. One process keeps the device it was given.
    /// </summary>
    private static ComputeDevice RankDevice(ComputeDevice device, ICommunicator communicator)
    {
        if (!device.IsCuda || communicator.WorldSize == 1)
        {
            return device;
        }

        int local = LaunchInfo.Current.LocalRank ?? 0;
        return ComputeDevice.Parse($"cuda:{local.ToString(CultureInfo.InvariantCulture)}", $"--device (rank {communicator.Rank}, local rank {local})");
    }

    /// <summary>The base model's config, from either folder layout (ours, or the released diffusers pipeline's).</summary>
    private static LayeredModelConfig BaseConfig(string dir)
    {
        string index = Path.Combine(dir, LayeredModel.IndexFile);
        if (!File.Exists(index))
        {
            throw new BadInputException(dir, $"not a model folder (no {LayeredModel.IndexFile}; model.base in the config)");
        }

        return LayeredModelConfig.IsDiffusersIndex(index) ? LayeredModelConfig.LoadDiffusersFolder(dir) : LayeredModelConfig.Load(index);
    }

    /// <summary>The base model path as written in the config: relative to the working directory, else to the config's repository.</summary>
    private static string ResolveModel(string path, string configPath)
    {
        if (Path.IsPathRooted(path) || Directory.Exists(path))
        {
            return Path.GetFullPath(path);
        }

        string? dir = Path.GetDirectoryName(configPath);
        while (dir is not null)
        {
            string candidate = Path.Combine(dir, path);
            if (Directory.Exists(candidate))
            {
                return candidate;
            }

            dir = Path.GetDirectoryName(dir);
        }

        throw new BadInputException(path, "base model folder not found (model.base in the config)");
    }

    private static string Line(StepLog s, int total) => string.Create(CultureInfo.InvariantCulture,
        $"step {s.Step + 1}/{total}  reward {s.RewardMean:F4} ± {s.RewardStd:F4}  zero-std {s.ZeroStdRatio:P0}  ties {s.TiesBefore}->{s.TiesAfter}  "
        + $"ratio {s.RatioMean:F5}±{s.RatioStd:F5} clip {s.ClipFraction:P1}  |g| {s.GradNorm:F3}  bad {s.BadLayersPerDecomposition:F2}  "
        + $"time {s.SamplingSeconds:F1}/{s.JudgingSeconds:F1}/{s.UpdateSeconds:F1} s");
}
