using System.Diagnostics;
using StableLayers.Core.Layers;
using StableLayers.Data.Synthesis;
using StableLayers.Model;
using StableLayers.Model.Pipeline;
using StableLayers.Model.Text;
using StableLayers.Model.Transformer;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Training.Pretraining;

/// <summary>
/// Pretrains the tiny base model on synthetic designs in two stages: the RGBA VAE (reconstruction), then
/// the transformer and text encoder with the layered flow-matching objective (frames = [composite, layers],
/// condition = the composite's latent, velocity target noise - x0). Every step's randomness is a function of
/// (seed, stage, step), so a resumed run continues exactly.
/// </summary>
public sealed class TinyPretrainer
{
    private readonly LayeredModelConfig config;
    private readonly PretrainSettings settings;
    private readonly string runDir;
    private readonly TextWriter log;
    private readonly Stopwatch clock = new();
    private double secondsBefore;
    private int budget;

    private double Elapsed => secondsBefore + clock.Elapsed.TotalSeconds;

    public TinyPretrainer(LayeredModelConfig config, string runDir, TextWriter log)
    {
        ArgumentNullException.ThrowIfNull(config);
        this.config = config;
        settings = config.Pretrain ?? new PretrainSettings();
        this.runDir = runDir;
        this.log = log;
    }

    /// <summary>
    /// Starts a new run from a trained model folder instead of random weights, at the transformer stage
    /// (its VAE and latent statistics are kept): continued pretraining with a new schedule.
    /// </summary>
    public string? InitFrom { get; init; }

    /// <summary>Where the model trains (the CLI's --device; default the CPU).</summary>
    public ComputeDevice Device { get; init; } = ComputeDevice.Cpu;

    /// <summary>Stops (after a checkpoint) once this many steps ran in this call; for tests and time-boxed sessions.</summary>
    public int? MaxStepsThisRun { get; init; }

    public PretrainState Run(bool resume, CancellationToken cancel = default)
    {
        Directory.CreateDirectory(runDir);
        torch.set_num_threads(Math.Max(1, settings.Threads));
        var synth = new SynthOptions { Size = config.Resolution, MinLayers = settings.MinLayers, MaxLayers = settings.MaxLayers, Seed = settings.Seed };
        LayeredModel model;
        PretrainState state;
        if (resume && PretrainCheckpoint.Exists(runDir))
        {
            model = LayeredModel.Load(Path.Combine(PretrainCheckpoint.PathIn(runDir), "model"), Device);
            state = PretrainCheckpoint.LoadState(runDir);
            log.WriteLine($"resuming at stage {state.Stage}, step {state.Step}");
        }
        else if (InitFrom is not null)
        {
            model = LayeredModel.Load(InitFrom, Device);
            state = new PretrainState { Stage = PretrainStages.Transformer };
            log.WriteLine($"continuing from {InitFrom}: transformer stage, {settings.TransformerSteps} steps");
        }
        else
        {
            // The vocabulary comes from the captions the generator writes (a fixed, small set of words).
            var captions = new SynthGenerator(synth).Generate(0, 2000).Select(s => s.Caption);
            model = LayeredModel.Create(config, WordTokenizer.Build(captions), settings.Seed).To(Device);
            state = new PretrainState();
        }

        budget = MaxStepsThisRun ?? int.MaxValue;
        secondsBefore = state.Seconds;
        clock.Restart();
        if (state.Stage == PretrainStages.Vae)
        {
            state = TrainVae(model, synth, state, resume, cancel);
        }

        if (state.Stage == PretrainStages.Transformer && budget > 0)
        {
            state = TrainTransformer(model, synth, state, resume, cancel);
        }

        if (state.Stage == PretrainStages.Decoder && budget > 0)
        {
            state = TrainDecoder(model, synth, state, resume, cancel);
        }

        model.Dispose();
        return state;
    }

    private PretrainState TrainVae(LayeredModel model, SynthOptions synth, PretrainState state, bool resume, CancellationToken cancel)
    {
        var vae = model.Vae;
        vae.train();
        var opt = optim.AdamW(vae.parameters(), lr: settings.VaeLearningRate, weight_decay: 0.0);
        if (resume && state.Step > 0)
        {
            PretrainCheckpoint.LoadOptimizer(runDir, opt);
        }

        var batches = new SynthBatches(synth, settings.VaeBatchSize);
        for (int step = state.Step; step < settings.VaeSteps; step++)
        {
            if (budget-- <= 0 || cancel.IsCancellationRequested)
            {
                return Checkpoint(model, opt, state with { Step = step, Seconds = Elapsed });
            }

            SetLr(opt, settings.VaeLearningRate, step, settings.VaeSteps, warmup: Math.Min(50, Math.Max(1, settings.VaeSteps / 10)));
            double loss;
            using (var scope = NewDisposeScope())
            {
                // Every layer and the composite of each design: the VAE must reconstruct sparse alpha layers as well as full images.
                var images = Frames(batches.At(step), Device.Torch);
                opt.zero_grad();
                var z = vae.EncodeMean(images);
                var recon = vae.Decode(z);
                // L1 alone settles on the median colour (grey) across diverse designs; the squared term pulls colour in.
                var l = nn.functional.l1_loss(recon, images) + nn.functional.mse_loss(recon, images) + (1e-4 * z.pow(2).mean());
                l.backward();
                GradientClipping.ClipTotalNorm(vae.parameters(), settings.GradClip);
                opt.step();
                loss = HostReads.ToArray<float>(l)[0];
            }

            state.VaeLosses.Add([step, loss]);
            Report("vae", step, settings.VaeSteps, loss);
            if ((step + 1) % settings.CheckpointEvery == 0)
            {
                state = Checkpoint(model, opt, state with { Step = step + 1, Seconds = Elapsed });
            }
        }

        vae.eval();
        var (mean, std) = LatentStatistics(model, synth, Device);
        model.SetLatentStatistics(mean, std);
        log.WriteLine($"latent statistics: mean [{string.Join(", ", mean.Select(m => m.ToString("F3", System.Globalization.CultureInfo.InvariantCulture)))}], std [{string.Join(", ", std.Select(m => m.ToString("F3", System.Globalization.CultureInfo.InvariantCulture)))}]");
        opt.Dispose();
        var next = state with { Stage = PretrainStages.Transformer, Step = 0, Seconds = Elapsed };
        using var freshOpt = TransformerOptimizer(model);
        return Checkpoint(model, freshOpt, next);
    }

    private PretrainState TrainTransformer(LayeredModel model, SynthOptions synth, PretrainState state, bool resume, CancellationToken cancel)
    {
        var transformer = model.Transformer;
        var text = (TinyTextEncoder)model.Prompts;
        model.Vae.eval();
        transformer.train();
        transformer.GradientCheckpointing = settings.GradientCheckpointing;
        text.train();
        using var opt = TransformerOptimizer(model);
        if (resume && state.Step > 0)
        {
            PretrainCheckpoint.LoadOptimizer(runDir, opt);
        }

        // The average starts from the weights this stage starts from (or, resuming, from the saved average).
        using var ema = settings.EmaDecay > 0 ? new ParameterEma(TrainedParameters(model), settings.EmaDecay) : null;
        if (ema is not null && resume && state.Step > 0 && PretrainCheckpoint.HasAverage(runDir))
        {
            using var saved = LayeredModel.Load(PretrainCheckpoint.AveragePathIn(runDir), Device);
            ema.Load(TrainedParameters(saved));
        }

        var batches = new SynthBatches(synth, settings.BatchSize);
        for (int step = state.Step; step < settings.TransformerSteps; step++)
        {
            if (budget-- <= 0 || cancel.IsCancellationRequested)
            {
                return Checkpoint(model, opt, state with { Step = step, Seconds = Elapsed }, ema);
            }

            SetLr(opt, settings.LearningRate, step, settings.TransformerSteps, settings.WarmupSteps);
            double loss;
            using (var scope = NewDisposeScope())
            {
                var samples = batches.At(step);
                var gen = Device.Generator(unchecked((ulong)StepSeed(2, step)));
                opt.zero_grad();
                var l = FlowMatchingLoss(model, samples, gen);
                l.backward();
                GradientClipping.ClipTotalNorm(transformer.parameters().Concat(text.parameters()), settings.GradClip);
                opt.step();
                ema?.Update();
                loss = HostReads.ToArray<float>(l)[0];
            }

            state.TransformerLosses.Add([step, loss]);
            Report("transformer", step, settings.TransformerSteps, loss);
            if ((step + 1) % settings.CheckpointEvery == 0 && step + 1 < settings.TransformerSteps)
            {
                state = Checkpoint(model, opt, state with { Step = step + 1, Seconds = Elapsed }, ema);
            }
        }

        // The finished transformer is the average; the stages after it and the exported model use it.
        ema?.CopyToParameters();
        string next = settings.DecoderSteps > 0 ? PretrainStages.Decoder : PretrainStages.Done;
        if (next == PretrainStages.Decoder)
        {
            using var decoderOpt = DecoderOptimizer(model);
            return Checkpoint(model, decoderOpt, state with { Stage = next, Step = 0, Seconds = Elapsed });
        }

        return Checkpoint(model, opt, state with { Stage = next, Step = settings.TransformerSteps, Seconds = Elapsed });
    }

    /// <summary>
    /// Fine-tunes the VAE decoder alone, encoder frozen: the latent space the transformer learned stays
    /// exactly the same, while reconstruction (the floor under every layer's error) improves.
    /// </summary>
    private PretrainState TrainDecoder(LayeredModel model, SynthOptions synth, PretrainState state, bool resume, CancellationToken cancel)
    {
        var vae = model.Vae;
        vae.eval();
        using var opt = DecoderOptimizer(model);
        if (resume && state.Step > 0)
        {
            PretrainCheckpoint.LoadOptimizer(runDir, opt);
        }

        // Batches from a separate part of the stream (seed + 1) so the decoder also sees designs the VAE stage did not.
        var batches = new SynthBatches(synth with { Seed = synth.Seed + 1 }, settings.VaeBatchSize);
        for (int step = state.Step; step < settings.DecoderSteps; step++)
        {
            if (budget-- <= 0 || cancel.IsCancellationRequested)
            {
                return Checkpoint(model, opt, state with { Step = step, Seconds = Elapsed });
            }

            SetLr(opt, settings.VaeLearningRate * 0.5, step, settings.DecoderSteps, warmup: Math.Min(50, Math.Max(1, settings.DecoderSteps / 10)));
            double loss;
            using (var scope = NewDisposeScope())
            {
                var images = Frames(batches.At(step), Device.Torch);
                Tensor z;
                using (no_grad())
                {
                    z = vae.EncodeMean(images);
                }

                opt.zero_grad();
                var l = DecoderLoss(vae.Decode(z), images);
                l.backward();
                GradientClipping.ClipTotalNorm(DecoderParameters(model), settings.GradClip);
                opt.step();
                loss = HostReads.ToArray<float>(l)[0];
            }

            state.DecoderLosses.Add([step, loss]);
            Report("decoder", step, settings.DecoderSteps, loss);
            if ((step + 1) % settings.CheckpointEvery == 0)
            {
                state = Checkpoint(model, opt, state with { Step = step + 1, Seconds = Elapsed });
            }
        }

        return Checkpoint(model, opt, state with { Stage = PretrainStages.Done, Step = settings.DecoderSteps, Seconds = Elapsed });
    }

    /// <summary>
    /// L1 of the raw RGBA plus L1 of each layer composited on white and on black, as the evaluation compares layers
    /// (docs/EVALUATION.md): the colour under transparent pixels costs little there, alpha errors cost what they cost
    /// a composite. Images in [-1, 1], [B, 4, H, W].
    /// </summary>
    public static Tensor DecoderLoss(Tensor recon, Tensor images)
    {
        ArgumentNullException.ThrowIfNull(recon);
        ArgumentNullException.ThrowIfNull(images);
        var p = ((recon + 1) / 2).clamp(0, 1);
        var g = (images + 1) / 2;
        var pa = p.narrow(1, 3, 1);
        var ga = g.narrow(1, 3, 1);
        var onBlackP = p.narrow(1, 0, 3) * pa;
        var onBlackG = g.narrow(1, 0, 3) * ga;
        return nn.functional.l1_loss(recon, images)
            + nn.functional.l1_loss(onBlackP, onBlackG)
            + nn.functional.l1_loss(onBlackP + 1 - pa, onBlackG + 1 - ga);
    }

    private static IEnumerable<TorchSharp.Modules.Parameter> DecoderParameters(LayeredModel model) =>
        model.Vae.named_parameters().Where(p => p.name.StartsWith("decoder.", StringComparison.Ordinal) || p.name.StartsWith("post_quant_conv.", StringComparison.Ordinal)).Select(p => p.parameter);

    private AdamW DecoderOptimizer(LayeredModel model) => optim.AdamW(DecoderParameters(model), lr: settings.VaeLearningRate * 0.5, weight_decay: 0.0);

    /// <summary>The layered flow-matching loss of one batch (all samples share the layer count).</summary>
    public Tensor FlowMatchingLoss(LayeredModel model, IReadOnlyList<SynthSample> samples, Generator gen)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(samples);
        int b = samples.Count;
        int n = samples[0].Stack.Count;
        Tensor x0;
        var device = model.Device;
        using (no_grad())
        {
            var images = Frames(samples, device);
            var z = model.Vae.Normalize(model.Vae.EncodeMean(images));
            x0 = z.view(b, n + 1, z.shape[1], z.shape[2], z.shape[3]);
        }

        int c = (int)x0.shape[2], h = (int)x0.shape[3], w = (int)x0.shape[4];
        var sigma = SampleSigma(b, device, gen);
        var noise = randn(x0.shape, device: device, generator: gen);
        var s = sigma.view(b, 1, 1, 1, 1);
        var xt = ((1 - s) * x0) + (s * noise);
        var target = noise - x0;

        var condition = LatentPacking.Pack(x0.narrow(1, 0, 1));
        var tokens = LatentPacking.AppendCondition(LatentPacking.Pack(xt), condition);
        var frames = FrameShape.Layered(n, h / LatentPacking.PatchSize, w / LatentPacking.PatchSize);
        var drop = HostReads.ToArray<float>(rand([b], device: device, generator: gen));
        var captions = samples.Select((smp, i) => drop[i] < settings.CaptionDropout ? string.Empty : smp.Caption).ToArray();
        var text = model.Prompts.Encode(captions);
        var pred = model.Transformer.forward(tokens, text.Embeddings, text.Mask, sigma, frames);
        long outputTokens = (n + 1L) * LatentPacking.TokensPerFrame(h, w);
        var v = LatentPacking.Unpack(LatentPacking.OutputPart(pred, outputTokens), n + 1, c, h, w);
        return nn.functional.mse_loss(v, target);
    }

    /// <summary>
    /// Training noise levels: logit-normal, except that a <see cref="PretrainSettings.HighNoiseShare"/> of the batch is
    /// uniform on [high_noise_min, 1] (both draws are made for every sample, so the stream of random numbers does not
    /// depend on the share).
    /// </summary>
    public Tensor SampleSigma(int b, Device device, Generator gen)
    {
        var logitNormal = sigmoid((randn([b], device: device, generator: gen) * (float)settings.LogitStd) + (float)settings.LogitMean);
        if (settings.HighNoiseShare <= 0)
        {
            return logitNormal;
        }

        var high = (float)settings.HighNoiseMin + ((1f - (float)settings.HighNoiseMin) * rand([b], device: device, generator: gen));
        var pick = rand([b], device: device, generator: gen) < settings.HighNoiseShare;
        return where(pick, high, logitNormal);
    }

    private AdamW TransformerOptimizer(LayeredModel model) =>
        optim.AdamW(TrainedParameters(model), lr: settings.LearningRate, weight_decay: settings.WeightDecay);

    private static (double[] Mean, double[] Std) LatentStatistics(LayeredModel model, SynthOptions synth, ComputeDevice device)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var samples = new SynthGenerator(synth with { Seed = synth.Seed + 7919 }).Generate(0, 64);
        var images = Frames(samples, device.Torch);
        var z = model.Vae.EncodeMean(images).transpose(0, 1).reshape(model.Vae.Config.ZDim, -1);
        var both = HostReads.ToArray<double>(cat([z.mean([1]).to(float64), z.std(1).clamp_min(1e-3).to(float64)]));
        int d = (int)z.shape[0];
        return (both[..d], both[d..]);
    }

    /// <summary>Every design's frames stacked: [sum(N+1), 4, H, W] in [-1,1], on <paramref name="device"/>.</summary>
    private static Tensor Frames(IEnumerable<SynthSample> samples, Device device) =>
        cat(samples.Select(s => LayerTensors.FromStack(WithComposite(s.Stack), device)).ToArray(), 0);

    /// <summary>[composite, layer 0, ..., layer N-1]: frame 0 of the model is the composite of the design.</summary>
    private static LayerStack WithComposite(LayerStack stack) =>
        new([new Layer("composite", stack.Composite()), .. stack.Layers]);

    private long StepSeed(int stage, int step) => ((long)settings.Seed * 1_000_003L) + (stage * 100_000_000L) + step;

    private static void SetLr(AdamW opt, double baseLr, int step, int total, int warmup)
    {
        double lr = step < warmup
            ? baseLr * (step + 1) / warmup
            : baseLr * 0.5 * (1 + Math.Cos(Math.PI * (step - warmup) / Math.Max(1, total - warmup)));
        foreach (var g in opt.ParamGroups)
        {
            g.LearningRate = Math.Max(lr, baseLr * 0.02);
        }
    }

    private PretrainState Checkpoint(LayeredModel model, AdamW opt, PretrainState state, ParameterEma? ema = null)
    {
        PretrainCheckpoint.Save(runDir, model, opt, state, ema);
        return state;
    }

    private static IEnumerable<TorchSharp.Modules.Parameter> TrainedParameters(LayeredModel model) =>
        model.Transformer.parameters().Concat(((TinyTextEncoder)model.Prompts).parameters());

    private void Report(string stage, int step, int total, double loss)
    {
        if (step % 25 == 0 || step + 1 == total)
        {
            double elapsed = Elapsed;
            log.WriteLine($"{stage} step {step + 1}/{total} loss {loss:F4} ({elapsed / 60:F1} min)");
        }
    }
}
