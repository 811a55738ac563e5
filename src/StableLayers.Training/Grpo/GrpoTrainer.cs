using System.Diagnostics;
using System.Text.Json;
using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Distributed;
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

    /// <summary>Reports each finished step (for progress display; every rank reports the same line).</summary>
    public IProgress<StepLog>? Progress { get; init; }

    /// <summary>Folder images instead of synthetic designs (null: config's data.source decides).</summary>
    public TrainingImages? Images { get; init; }

    /// <summary>
    /// The data-parallel ranks this trainer is one of (default: one process). Rank 0 alone reads and writes the run
    /// folder; every rank needs the base model (and the training images of a folder source).
    /// </summary>
    public ICommunicator Communicator { get; init; } = SingleProcess.Instance;

    /// <summary>
    /// Trains until <see cref="GrpoConfig.Steps"/> (or <paramref name="stopAtStep"/>) steps are done. Resumes from the
    /// checkpoint when <paramref name="resume"/>. Cancellation finishes the current step, checkpoints and returns; with
    /// several ranks, a stop on any rank stops every rank after the same step. A failure on one rank stops every rank
    /// (<see cref="ICommunicator.Abort"/>) instead of leaving the others waiting.
    /// </summary>
    public async Task<GrpoRunState> RunAsync(bool resume, int? stopAtStep = null, CancellationToken cancel = default)
    {
        try
        {
            return await RunRankAsync(resume, stopAtStep, cancel).ConfigureAwait(false);
        }
        catch (Exception e) when (Communicator.WorldSize > 1 && !ReferenceEquals(e, agreedFailure))
        {
            Communicator.Abort(e is BadInputException ? 2 : 1, $"rank {Communicator.Rank} of {Communicator.WorldSize} failed, stopping every rank: {e.Message}");
            throw;
        }
    }

    private async Task<GrpoRunState> RunRankAsync(bool resume, int? stopAtStep, CancellationToken cancel)
    {
        bool lead = Communicator.Rank == 0;
        int world = Communicator.WorldSize;
        if (config.Sampling.ImagesPerStep % world != 0)
        {
            throw Agreed(new BadInputException("sampling.images_per_step", $"{config.Sampling.ImagesPerStep} images per step do not split evenly over {world} ranks; make it a multiple of the world size"));
        }

        // Rank 0 prepares the run folder and reads the checkpoint; its verdict (and the checkpoint's bytes) reach every rank.
        var start = StartOnEveryRank(resume);
        torch.set_num_threads(config.Threads);
        var dtype = ComputeDevice.ParseDType(config.Model.DType, "model.dtype");
        device.CheckDType(dtype, "model.dtype");
        using var model = LayeredModel.Load(baseModelDir, device, dtype == ScalarType.Float32 ? null : dtype);
        PreparePrompts(model, lead);
        model.Transformer.GradientCheckpointing = config.Grpo.GradientCheckpointing;
        var loraConfig = new LoraConfig
        {
            Rank = config.Lora.Rank,
            Alpha = config.Lora.Alpha,
            TargetModules = config.Lora.Targets.Count > 0 ? config.Lora.Targets : LoraConfig.AttentionAndFeedForward,
        };

        using var adapters = start.Checkpoint is { } checkpoint
            ? checkpoint.LoadAdapters(model.Transformer, lead ? run : null)
            : LoraAdapters.Inject(model.Transformer, loraConfig, config.Seed);
        using var optimizer = optim.AdamW(adapters.TrainableParameters(), config.Optim.LearningRate, config.Optim.Beta1, config.Optim.Beta2,
            config.Optim.Eps, config.Optim.WeightDecay);
        string adapterDTypes = string.Join("/", adapters.TrainableParameters().Select(p => p.dtype).Distinct());
        Info($"base weights {model.Transformer.DType}; LoRA adapters and AdamW state {adapterDTypes}");
        var state = new GrpoRunState { WorldSize = world };
        if (start.Checkpoint is { } resumed)
        {
            state = resumed.LoadOptimizer(optimizer, lead ? run : null);
            Info($"resuming at step {state.Step}");
        }

        if (lead)
        {
            run.DropLogsAfter(state.Step);
        }

        var images = Images ?? TrainingImages.Synthetic(model.Config.Resolution, config.Data.SynthSeed, config.Sampling.MinLayers, config.Sampling.MaxLayers);
        var heldout = lead
            ? new HeldoutEvaluation(model, HeldoutEvaluation.Samples(model.Config.Resolution, config.Data.HeldoutSeed, config.Data.HeldoutCount,
                config.Sampling.MinLayers, config.Sampling.MaxLayers), config.Sampling.EvalSteps, RolloutSettings.Of(config.Sampling))
            : null;
        Info($"GRPO on {images.Description}: {config.Sampling.ImagesPerStep} images x {config.Sampling.GroupSize} candidates per step"
            + (world > 1 ? $" over {world} ranks" : string.Empty)
            + $", LoRA r{loraConfig.Rank} ({adapters.TrainableParameterCount:N0} params), ratio {SettingEnum.Name(config.Grpo.RatioMode)}, judge {judge.Name}");

        // With several ranks a stop is only acted on where the ranks agree (after a step), so the step itself and the
        // evaluations run uncancelled: a judge call cancelled on one rank alone would leave the others waiting.
        var work = world == 1 ? cancel : CancellationToken.None;
        var grpoStep = new GrpoStep(config, judge, device, log, Communicator);
        var clock = Stopwatch.StartNew();
        double secondsBefore = state.Seconds;
        int last = Math.Min(config.Steps, stopAtStep ?? int.MaxValue);
        bool stop = DataParallel.AgreeStop(Communicator, cancel.IsCancellationRequested);
        if (state.Step == 0 && config.Data.HeldoutCount > 0 && !stop && heldout is not null)
        {
            await EvaluateAsync(heldout, 0, work).ConfigureAwait(false);
        }

        while (state.Step < last && !stop)
        {
            StepOutcome outcome;
            try
            {
                outcome = await grpoStep.RunAsync(model, adapters, optimizer, images, state.Step, work).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                // One process stopped inside a step (a judge call waiting on a slow server): the step is dropped
                // and the last finished step is checkpointed below.
                stop = true;
                break;
            }

            var (stepLog, skipped, usage, groups) = outcome;
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
            if (lead)
            {
                run.AppendMetrics(stepLog);
            }

            Progress?.Report(stepLog);

            stop = DataParallel.AgreeStop(Communicator, cancel.IsCancellationRequested);
            if (stepLog.NonFinite)
            {
                Info($"step {stepLog.Step}: non-finite loss or gradient, step skipped ({inRow} in a row)");
                if (inRow >= config.Grpo.MaxNonFiniteInRow)
                {
                    Checkpoint(adapters, optimizer, state);
                    throw Agreed(new InvalidOperationException(
                        $"stopped: {inRow} steps in a row had a non-finite loss or gradient (grpo.max_nonfinite_in_row = {config.Grpo.MaxNonFiniteInRow}); lower optim.lr or grpo.clip_range, the checkpoint at step {state.Step} is kept"));
                }
            }

            bool final = state.Step == last;
            if (lead && config.Run.GridEvery > 0 && (state.Step % config.Run.GridEvery == 0 || final))
            {
                run.WriteSampleGrid(state.Step, lastGroups);
            }

            if (heldout is not null && config.Data.HeldoutCount > 0 && config.Run.EvalEvery > 0 && (state.Step % config.Run.EvalEvery == 0 || state.Step == config.Steps))
            {
                await EvaluateAsync(heldout, state.Step, CancellationToken.None).ConfigureAwait(false);
            }

            if (state.Step % config.Run.CheckpointEvery == 0 || final || stop)
            {
                Checkpoint(adapters, optimizer, state);
            }
        }

        if (stop)
        {
            Checkpoint(adapters, optimizer, state);
            Info($"interrupted: checkpoint at step {state.Step} written; continue with --resume");
        }

        return state;
    }

    /// <summary>
    /// Rank 0 prepares the run folder (refusing a new run in a used folder) and, on resume, reads the checkpoint and
    /// refuses one written by a different number of ranks; every rank gets the verdict and the checkpoint's bytes, so
    /// only rank 0 needs the run folder and every rank starts from the same adapters and AdamW state.
    /// </summary>
    private StartPacket StartOnEveryRank(bool resume)
    {
        StartPacket? verdict = null;
        if (Communicator.Rank == 0)
        {
            try
            {
                run.Prepare(resume, config);
                var checkpoint = resume && run.HasCheckpoint ? run.ReadCheckpoint(Communicator.WorldSize > 1) : null;
                if (checkpoint is not null && checkpoint.State.WorldSize != Communicator.WorldSize)
                {
                    throw new BadInputException(run.CheckpointDir,
                        $"the checkpoint was written by {checkpoint.State.WorldSize} rank(s) and this run has {Communicator.WorldSize}; resume with {checkpoint.State.WorldSize} rank(s) (the run is a function of the seed and the world size)");
                }

                verdict = new StartPacket(null, null, checkpoint);
            }
            catch (BadInputException e) when (Communicator.WorldSize > 1)
            {
                verdict = new StartPacket(e.FilePath, e.Problem, null);
            }
        }

        var packet = Communicator.WorldSize == 1 ? verdict! : StartPacket.FromBytes(Communicator.Broadcast(verdict?.ToBytes()));
        return packet.ErrorPath is not null ? throw Agreed(new BadInputException(packet.ErrorPath, packet.Error!)) : packet;
    }

    /// <summary>What rank 0 tells every rank before training: a refusal (a bad-input path and problem) or where to start.</summary>
    private sealed record StartPacket(string? ErrorPath, string? Error, ResumePoint? Checkpoint)
    {
        public byte[] ToBytes()
        {
            using var stream = new MemoryStream();
            using (var w = new BinaryWriter(stream))
            {
                w.Write(ErrorPath ?? string.Empty);
                w.Write(Error ?? string.Empty);
                w.Write(Checkpoint is not null);
                if (Checkpoint is { } c)
                {
                    w.Write(JsonSerializer.Serialize(c.State));
                    foreach (var bytes in new[] { c.Lora ?? [], c.Optimizer ?? [] })
                    {
                        w.Write(bytes.Length);
                        w.Write(bytes);
                    }
                }
            }

            return stream.ToArray();
        }

        public static StartPacket FromBytes(byte[] data)
        {
            using var r = new BinaryReader(new MemoryStream(data));
            string path = r.ReadString(), error = r.ReadString();
            ResumePoint? checkpoint = null;
            if (r.ReadBoolean())
            {
                var state = JsonSerializer.Deserialize<GrpoRunState>(r.ReadString()) ?? throw new InvalidOperationException("rank 0 sent no run state");
                var lora = r.ReadBytes(r.ReadInt32());
                checkpoint = new ResumePoint(state, lora, r.ReadBytes(r.ReadInt32()));
            }

            return new StartPacket(path.Length == 0 ? null : path, path.Length == 0 ? null : error, checkpoint);
        }
    }

    /// <summary>
    /// Every rank checks that the ranks still hold the same adapters (refusing to go on otherwise), then rank 0 writes
    /// the checkpoint.
    /// </summary>
    private void Checkpoint(LoraAdapters adapters, AdamW optimizer, GrpoRunState state)
    {
        if (DataParallel.Divergence(Communicator, adapters.TrainableParameters()) is { } problem)
        {
            throw Agreed(new InvalidOperationException($"stopped at step {state.Step}: {problem}; resume from the last checkpoint"));
        }

        if (Communicator.Rank == 0)
        {
            run.SaveCheckpoint(adapters, optimizer, state);
        }
    }

    /// <summary>A failure every rank raises at the same point: each stops with it, nobody aborts the others.</summary>
    private Exception Agreed(Exception e) => agreedFailure = e;

    private Exception? agreedFailure;

    /// <summary>The run's own progress lines, from rank 0 only.</summary>
    private void Info(string line)
    {
        if (Communicator.Rank == 0)
        {
            log.WriteLine(line);
        }
    }

    private List<(RgbaImage Input, IReadOnlyList<LayerStack> Candidates)> lastGroups = [];

    /// <summary>
    /// The released model's Qwen2.5-VL is only needed for prompts: with one prompt for every image (rollouts and
    /// held-out evaluation alike) it is encoded here once and the encoder leaves the device, so the transformer,
    /// its adapters and the optimiser get its memory (15 GB in bf16 at full size). Per-image captions keep it.
    /// </summary>
    private void PreparePrompts(LayeredModel model, bool lead)
    {
        if (model.Prompts is not QwenPromptEncoder qwen)
        {
            return;
        }

        string prompt = config.Sampling.Prompt;
        if (prompt == RolloutSettings.CaptionPrompt)
        {
            if (lead)
            {
                log.WriteLine("prompts: each image's caption (sampling.prompt = \"{caption}\"); the text encoder stays loaded");
            }

            return;
        }

        qwen.CheckLength(prompt);
        using (var scope = NewDisposeScope())
        {
            var embedding = qwen.Encode([prompt]);
            if (lead)
            {
                log.WriteLine($"prompt \"{prompt}\" encoded once ({embedding.Embeddings.shape[1]} tokens); text encoder released");
            }
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
