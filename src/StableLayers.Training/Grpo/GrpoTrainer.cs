using System.Diagnostics;
using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges;
using StableLayers.Model;
using StableLayers.Model.Lora;
using StableLayers.Model.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Training.Grpo;

/// <summary>
/// A Stable-Layers Flow-GRPO run: loads the base model, attaches (or resumes) the LoRA adapters and AdamW, and
/// runs <see cref="GrpoStep"/> (one step of the algorithm, in the order of docs/RL.md) until the configured step,
/// with held-out evaluations, sample grids and atomic checkpoints in between. The run folder holds metrics.jsonl,
/// eval.jsonl, grids/, the latest lora.safetensors and the checkpoint; randomness depends only on (seed, step), so
/// resume is exact.
/// </summary>
public sealed class GrpoTrainer
{
    private readonly GrpoConfig config;
    private readonly GrpoRunFolder run;
    private readonly string baseModelDir;
    private readonly IJudge judge;
    private readonly TextWriter log;
    private readonly ComputeDevice device;

    /// <summary>A trainer on <paramref name="device"/> (default: the config's <c>device</c> key, parsed and checked here).</summary>
    public GrpoTrainer(GrpoConfig config, string baseModelDir, string runDir, IJudge judge, TextWriter log, ComputeDevice? device = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        this.config = config;
        this.device = device ?? ComputeDevice.Parse(config.Device, "device");
        this.baseModelDir = baseModelDir;
        run = new GrpoRunFolder(runDir);
        this.judge = judge;
        this.log = log;
    }

    /// <summary>Reports each finished step (for progress display).</summary>
    public IProgress<StepLog>? Progress { get; init; }

    /// <summary>Folder images instead of synthetic designs (null: config's data.source decides).</summary>
    public TrainingImages? Images { get; init; }

    /// <summary>
    /// Trains until <see cref="GrpoConfig.Steps"/> (or <paramref name="stopAtStep"/>) steps are done. Resumes from the
    /// checkpoint when <paramref name="resume"/>. Cancellation finishes the current step, checkpoints and returns.
    /// </summary>
    public async Task<GrpoRunState> RunAsync(bool resume, int? stopAtStep = null, CancellationToken cancel = default)
    {
        run.Prepare(resume, config);
        torch.set_num_threads(config.Threads);
        var dtype = ComputeDevice.ParseDType(config.Model.DType, "model.dtype");
        device.CheckDType(dtype, "model.dtype");
        using var model = LayeredModel.Load(baseModelDir, device, dtype == ScalarType.Float32 ? null : dtype);
        PreparePrompts(model);
        model.Transformer.GradientCheckpointing = config.Grpo.GradientCheckpointing;
        var loraConfig = new LoraConfig
        {
            Rank = config.Lora.Rank,
            Alpha = config.Lora.Alpha,
            TargetModules = config.Lora.Targets.Count > 0 ? config.Lora.Targets : LoraConfig.AttentionAndFeedForward,
        };

        bool fromCheckpoint = resume && run.HasCheckpoint;
        using var adapters = fromCheckpoint
            ? LoraAdapters.Load(model.Transformer, run.CheckpointLora)
            : LoraAdapters.Inject(model.Transformer, loraConfig, config.Seed);
        using var optimizer = optim.AdamW(adapters.TrainableParameters(), config.Optim.LearningRate, config.Optim.Beta1, config.Optim.Beta2,
            config.Optim.Eps, config.Optim.WeightDecay);
        string adapterDTypes = string.Join("/", adapters.TrainableParameters().Select(p => p.dtype).Distinct());
        log.WriteLine($"base weights {model.Transformer.DType}; LoRA adapters and AdamW state {adapterDTypes}");
        var state = new GrpoRunState();
        if (fromCheckpoint)
        {
            state = run.LoadCheckpoint(optimizer);
            log.WriteLine($"resuming at step {state.Step}");
        }

        run.DropLogsAfter(state.Step);
        var images = Images ?? TrainingImages.Synthetic(model.Config.Resolution, config.Data.SynthSeed, config.Sampling.MinLayers, config.Sampling.MaxLayers);
        var heldout = new HeldoutEvaluation(model, HeldoutEvaluation.Samples(model.Config.Resolution, config.Data.HeldoutSeed, config.Data.HeldoutCount,
            config.Sampling.MinLayers, config.Sampling.MaxLayers), config.Sampling.EvalSteps, RolloutSettings.Of(config.Sampling));
        log.WriteLine($"GRPO on {images.Description}: {config.Sampling.ImagesPerStep} images x {config.Sampling.GroupSize} candidates per step, "
            + $"LoRA r{loraConfig.Rank} ({adapters.TrainableParameterCount:N0} params), ratio {SettingEnum.Name(config.Grpo.RatioMode)}, judge {judge.Name}");

        var grpoStep = new GrpoStep(config, judge, device, log);
        var clock = Stopwatch.StartNew();
        double secondsBefore = state.Seconds;
        int last = Math.Min(config.Steps, stopAtStep ?? int.MaxValue);
        if (state.Step == 0 && config.Data.HeldoutCount > 0 && !cancel.IsCancellationRequested)
        {
            await EvaluateAsync(heldout, 0, cancel).ConfigureAwait(false);
        }

        while (state.Step < last && !cancel.IsCancellationRequested)
        {
            var (stepLog, skipped, usage, groups) = await grpoStep.RunAsync(model, adapters, optimizer, images, state.Step, cancel).ConfigureAwait(false);
            lastGroups = [.. groups];
            int inRow = stepLog.NonFinite ? state.NonFiniteInRow + 1 : 0;
            state = state with
            {
                Step = state.Step + 1,
                NonFiniteInRow = inRow,
                Seconds = secondsBefore + clock.Elapsed.TotalSeconds,
                SkippedImages = state.SkippedImages + skipped,
                JudgeUsage = state.JudgeUsage.Add(usage),
            };
            run.AppendMetrics(stepLog);
            Progress?.Report(stepLog);
            if (stepLog.NonFinite)
            {
                log.WriteLine($"step {stepLog.Step}: non-finite loss or gradient, step skipped ({inRow} in a row)");
                if (inRow >= config.Grpo.MaxNonFiniteInRow)
                {
                    run.SaveCheckpoint(adapters, optimizer, state);
                    throw new InvalidOperationException(
                        $"stopped: {inRow} steps in a row had a non-finite loss or gradient (grpo.max_nonfinite_in_row = {config.Grpo.MaxNonFiniteInRow}); lower optim.lr or grpo.clip_range, the checkpoint at step {state.Step} is kept");
                }
            }

            bool final = state.Step == last;
            if (config.Run.GridEvery > 0 && (state.Step % config.Run.GridEvery == 0 || final))
            {
                run.WriteSampleGrid(state.Step, lastGroups);
            }

            if (config.Data.HeldoutCount > 0 && config.Run.EvalEvery > 0 && (state.Step % config.Run.EvalEvery == 0 || state.Step == config.Steps))
            {
                await EvaluateAsync(heldout, state.Step, CancellationToken.None).ConfigureAwait(false);
            }

            if (state.Step % config.Run.CheckpointEvery == 0 || final || cancel.IsCancellationRequested)
            {
                run.SaveCheckpoint(adapters, optimizer, state);
            }
        }

        if (cancel.IsCancellationRequested)
        {
            run.SaveCheckpoint(adapters, optimizer, state);
            log.WriteLine($"interrupted: checkpoint at step {state.Step} written; continue with --resume");
        }

        return state;
    }

    private List<(RgbaImage Input, IReadOnlyList<LayerStack> Candidates)> lastGroups = [];

    /// <summary>
    /// The released model's Qwen2.5-VL is only needed for prompts: with one prompt for every image (rollouts and
    /// held-out evaluation alike) it is encoded here once and the encoder leaves the device, so the transformer,
    /// its adapters and the optimiser get its memory (15 GB in bf16 at full size). Per-image captions keep it.
    /// </summary>
    private void PreparePrompts(LayeredModel model)
    {
        if (model.Prompts is not QwenPromptEncoder qwen)
        {
            return;
        }

        string prompt = config.Sampling.Prompt;
        if (prompt == RolloutSettings.CaptionPrompt)
        {
            log.WriteLine("prompts: each image's caption (sampling.prompt = \"{caption}\"); the text encoder stays loaded");
            return;
        }

        qwen.CheckLength(prompt);
        using (var scope = NewDisposeScope())
        {
            var embedding = qwen.Encode([prompt]);
            log.WriteLine($"prompt \"{prompt}\" encoded once ({embedding.Embeddings.shape[1]} tokens); text encoder released");
        }

        qwen.ReleaseEncoder();
    }

    private async Task EvaluateAsync(HeldoutEvaluation heldout, int step, CancellationToken cancel)
    {
        var sw = Stopwatch.StartNew();
        var (evalLog, predictions) = await heldout.RunAsync(step, judge, cancel).ConfigureAwait(false);
        run.AppendEval(evalLog);
        run.WriteEvalGrid(step, heldout.Grid(predictions));
        log.WriteLine($"eval step {step}: best-match L1 {evalLog.BestMatchL1:F4}, bad layers {evalLog.BadLayers:F2}, recon L1 {evalLog.ReconL1:F4}, reward {evalLog.RewardMean:F3} ({sw.Elapsed.TotalSeconds:F1} s)");
    }
}

/// <summary>Deterministic per-(seed, step, image) seeds (SplitMix64), stable across processes and .NET versions.</summary>
public static class StepSeeds
{
    public static ulong ForGenerator(long seed, int step, int index)
    {
        ulong z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL) ^ ((ulong)(uint)step << 20) ^ (uint)index;
        z = unchecked(z + 0x9E3779B97F4A7C15UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }

    public static int ForRandom(long seed, int step, int index) => (int)(ForGenerator(seed, step, index) & int.MaxValue);
}
