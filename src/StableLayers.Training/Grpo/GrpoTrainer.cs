using System.Diagnostics;
using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges;
using StableLayers.Metrics;
using StableLayers.Model;
using StableLayers.Model.Lora;
using StableLayers.Model.Schedulers;
using StableLayers.Model.Text;
using StableLayers.Model.Transformer;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Training.Grpo;

/// <summary>
/// Stable-Layers Flow-GRPO: per step, sample G candidates for each of a few unlabeled images (one layer
/// count N per group, SDE window steps stored), judge them, turn rewards into group advantages, and take
/// one AdamW step on the LoRA adapters. The run folder holds metrics.jsonl, eval.jsonl, grids/, the latest
/// lora.safetensors and an atomic checkpoint; randomness depends only on (seed, step), so resume is exact.
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
            config.Sampling.MinLayers, config.Sampling.MaxLayers), config.Sampling.EvalSteps, RolloutSettingsOf(config.Sampling));
        log.WriteLine($"GRPO on {images.Description}: {config.Sampling.ImagesPerStep} images x {config.Sampling.GroupSize} candidates per step, "
            + $"LoRA r{loraConfig.Rank} ({adapters.TrainableParameterCount:N0} params), ratio {config.Grpo.RatioMode}, judge {judge.Name}");

        var clock = Stopwatch.StartNew();
        double secondsBefore = state.Seconds;
        int last = Math.Min(config.Steps, stopAtStep ?? int.MaxValue);
        if (state.Step == 0 && config.Data.HeldoutCount > 0 && !cancel.IsCancellationRequested)
        {
            await EvaluateAsync(heldout, 0, cancel).ConfigureAwait(false);
        }

        while (state.Step < last && !cancel.IsCancellationRequested)
        {
            var (stepLog, skipped, usage) = await StepAsync(model, adapters, optimizer, images, state.Step, cancel).ConfigureAwait(false);
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

    private async Task<(StepLog Log, int Skipped, JudgeUsage Usage)> StepAsync(
        LayeredModel model, LoraAdapters adapters, AdamW optimizer, TrainingImages images, int step, CancellationToken cancel)
    {
        var s = config.Sampling;
        var settings = RolloutSettingsOf(s);
        var groups = new List<GroupRollout>();
        int skipped = 0;
        var sw = Stopwatch.StartNew();
        try
        {
            for (int i = 0; i < s.ImagesPerStep; i++)
            {
                long position = ((long)step * s.ImagesPerStep) + i;
                TrainingImage image;
                try
                {
                    image = images.At(position);
                }
                catch (BadInputException e)
                {
                    log.WriteLine($"warning: skipped {e.Message}");
                    skipped++;
                    continue;
                }

                var rng = new Random(StepSeeds.ForRandom(config.Seed, step, i));
                int layers = rng.Next(s.MinLayers, s.MaxLayers + 1);
                var window = SdeWindow.Draw(s.Steps, rng, s.SdeWindow);
                var generator = device.Generator(StepSeeds.ForGenerator(config.Seed, step, i));
                groups.Add(GroupRollout.Run(model, image, layers, settings, window, generator));
            }

            double sampling = sw.Elapsed.TotalSeconds;
            sw.Restart();
            var judged = await Task.WhenAll(groups.Select(g =>
                judge.JudgeAsync(new JudgeGroup($"step{step}/{g.Image.Id}", g.Image.Image, g.Candidates), cancel))).ConfigureAwait(false);
            double judging = sw.Elapsed.TotalSeconds;

            var advantages = GroupAdvantages.Compute(judged.Select(j => j.Rewards).ToList(),
                new AdvantageOptions(config.Grpo.GlobalStd, config.Grpo.AdvantageClip));
            sw.Restart();
            // A policy that produces non-finite latents has diverged: its rewards mean nothing, so the step is skipped.
            bool divergedSamples = groups.Count > 0 && AnyNonFinite(groups.Select(g => g.Sampling.Final));
            var update = divergedSamples ? UpdateStats.Skipped : GrpoUpdate.RunMinibatches(groups, advantages.Advantages, adapters, optimizer, new UpdateSettings(
                RatioModes.Parse(config.Grpo.RatioMode), config.Grpo.RescaleExponent, config.Grpo.ClipRange, config.Grpo.KlBeta,
                config.Grpo.StepWeight, config.Optim.GradClip), config.Grpo.Minibatches);
            double updating = sw.Elapsed.TotalSeconds;

            var rewards = judged.SelectMany(j => j.Rewards).Where(r => r is not null).Select(r => r!.Value).ToArray();
            var phase1 = judged.SelectMany(j => j.Candidates).Where(c => c.Phase1Reward is not null).Select(c => c.Phase1Reward!.Value).ToArray();
            double flops = groups.Sum(g => g.Transitions.Count * 3 * TransformerFlops.Forward(model.Config.Transformer, g.Conditioning.Batch, g.Conditioning.ImageTokens, g.Conditioning.TextTokens));
            var badLayers = groups.SelectMany(g => g.Candidates.Select(c => DecompositionEvaluator.Evaluate(g.Image.Id, c, null, g.Image.Image).BadLayers)).ToArray();
            var stepLog = new StepLog
            {
                Step = step,
                RewardMean = rewards.Length == 0 ? double.NaN : rewards.Average(),
                RewardStd = rewards.Length == 0 ? double.NaN : GroupAdvantages.PopulationStd(rewards),
                Phase1RewardMean = phase1.Length == 0 ? double.NaN : phase1.Average(),
                Criteria = CriterionMeans(judged),
                ZeroStdRatio = advantages.ZeroStdRatio,
                TiesBefore = judged.Sum(j => j.Diagnostics.TiesBefore),
                TiesAfter = judged.Sum(j => j.Diagnostics.TiesAfter),
                JudgeFailures = judged.Sum(j => j.Diagnostics.Failures),
                DroppedGroups = advantages.DroppedGroups,
                Layers = groups.Select(g => g.Layers).ToArray(),
                Loss = update.Loss,
                RatioMean = update.RatioMean,
                RatioStd = update.RatioStd,
                LogRatioStd = update.LogRatioStd,
                ClipFraction = update.ClipFraction,
                Kl = update.Kl,
                GradNorm = update.GradNorm,
                LearningRate = config.Optim.LearningRate,
                NonFinite = update.NonFinite,
                BadLayersPerDecomposition = badLayers.Length == 0 ? 0 : badLayers.Average(),
                SamplingSeconds = sampling,
                JudgingSeconds = judging,
                UpdateSeconds = updating,
                UpdateGflops = update.TrainedBatches == 0 || updating <= 0 ? 0 : flops / updating / 1e9,
                PeakRssMb = Process.GetCurrentProcess().PeakWorkingSet64 / (1024.0 * 1024.0),
                FirstLogRatios = update.FirstLogRatios,
            };
            var usage = judged.Aggregate(JudgeUsage.None, (u, j) => u.Add(j.Diagnostics.Usage));
            lastGroups = groups.Select(g => (g.Image.Image, g.Candidates)).ToList();
            return (stepLog, skipped, usage);
        }
        finally
        {
            foreach (var g in groups)
            {
                g.Dispose();
            }
        }
    }

    private List<(RgbaImage Input, IReadOnlyList<LayerStack> Candidates)> lastGroups = [];

    /// <summary>Whether any of the tensors holds a NaN or infinity, read back in one transfer.</summary>
    private static bool AnyNonFinite(IEnumerable<Tensor> tensors)
    {
        using var scope = NewDisposeScope();
        var finite = stack(tensors.Select(t => t.isfinite().all()).ToArray()).all();
        return !HostReads.ToArray<bool>(finite)[0];
    }

    private static RolloutSettings RolloutSettingsOf(GrpoConfig.SamplingSection s) =>
        new(s.GroupSize, s.Steps, s.NoiseLevel, s.SdeKind == "cps" ? SdeKind.Cps : SdeKind.Sde, s.Prompt);

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

    private static Dictionary<string, double> CriterionMeans(IEnumerable<GroupJudgement> judged)
    {
        var scores = judged.SelectMany(j => j.Candidates).Where(c => !c.Failed).Select(c => c.Calibrated ?? c.Phase1).OfType<CriterionScores>().ToList();
        return scores.Count == 0
            ? []
            : Criteria.All.ToDictionary(Criteria.Key, c => scores.Average(s => s[c]));
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

public static class RatioModes
{
    public static RatioMode Parse(string name) => name switch
    {
        "sum-rescale" => RatioMode.SumRescale,
        "guard-mean" => RatioMode.GuardMean,
        "none" => RatioMode.None,
        _ => throw new ArgumentException($"unknown ratio mode '{name}'"),
    };
}
