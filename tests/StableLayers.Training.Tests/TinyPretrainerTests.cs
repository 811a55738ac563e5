using StableLayers.Data.Synthesis;
using StableLayers.Model;
using StableLayers.Model.Text;
using StableLayers.Model.Transformer;
using StableLayers.Model.Vae;
using StableLayers.TestSupport;
using StableLayers.Training.Pretraining;
using static TorchSharp.torch;

namespace StableLayers.Training.Tests;

public class TinyPretrainerTests
{
    private static LayeredModelConfig Config(int vaeSteps, int transformerSteps, int decoderSteps = 0, double emaDecay = 0) => new()
    {
        Name = "test",
        Resolution = 16,
        Transformer = TransformerConfig.Tiny(layers: 1, heads: 2, headDim: 16, textDim: 16, inChannels: 16, outChannels: 4),
        Vae = VaeConfig.Tiny(baseDim: 8, zDim: 4, dimMult: [1, 2]),
        TextEncoder = new TinyTextEncoderConfig { HiddenSize = 16, NumHeads = 2, NumLayers = 1 },
        Pretrain = new PretrainSettings
        {
            VaeSteps = vaeSteps,
            VaeBatchSize = 2,
            TransformerSteps = transformerSteps,
            DecoderSteps = decoderSteps,
            BatchSize = 2,
            WarmupSteps = 2,
            CheckpointEvery = 1000,
            MinLayers = 2,
            MaxLayers = 3,
            Threads = 1,
            EmaDecay = emaDecay,
        },
    };

    [Fact]
    public void VaeLossFallsOverAFewSteps()
    {
        using var run = new TempDir();
        var state = new TinyPretrainer(Config(80, 0), run.Path, TextWriter.Null) { MaxStepsThisRun = 80 }.Run(resume: false);
        double first = state.VaeLosses.Take(5).Average(p => p[1]);
        double last = state.VaeLosses.TakeLast(5).Average(p => p[1]);
        Assert.True(last < first * 0.8, $"VAE loss {first:F4} -> {last:F4}");
    }

    [Fact]
    public void FlowMatchingLossFallsOnAFixedBatch()
    {
        using var scope = NewDisposeScope();
        var config = Config(0, 0);
        var samples = new SynthGenerator(new SynthOptions { Size = 16, MinLayers = 3, MaxLayers = 3 }).Generate(0, 4).ToList();
        using var model = LayeredModel.Create(config, WordTokenizer.Build(samples.Select(s => s.Caption)), seed: 1);
        var trainer = new TinyPretrainer(config, Path.GetTempPath(), TextWriter.Null);
        var opt = optim.AdamW(model.Transformer.parameters().Concat(((TinyTextEncoder)model.Prompts).parameters()), lr: 3e-3);
        var losses = new List<float>();
        for (int i = 0; i < 25; i++)
        {
            using var step = NewDisposeScope();
            opt.zero_grad();
            // The same noise and timesteps every step: only the weights change.
            var loss = trainer.FlowMatchingLoss(model, samples, new Generator(seed: 42));
            loss.backward();
            opt.step();
            losses.Add(loss.item<float>());
        }

        Assert.True(losses[^1] < losses[0] * 0.7f, $"flow-matching loss {losses[0]:F4} -> {losses[^1]:F4}");
    }

    [Fact]
    public void ResumedRunMatchesUninterruptedRunExactly()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        var config = Config(3, 4, decoderSteps: 2);
        var straight = new TinyPretrainer(config, a.Path, TextWriter.Null).Run(resume: false);
        Assert.Equal(PretrainStages.Done, straight.Stage);

        var first = new TinyPretrainer(config, b.Path, TextWriter.Null) { MaxStepsThisRun = 5 }.Run(resume: false);
        Assert.Equal(PretrainStages.Transformer, first.Stage);
        var resumed = new TinyPretrainer(config, b.Path, TextWriter.Null).Run(resume: true);
        Assert.Equal(PretrainStages.Done, resumed.Stage);
        Assert.Equal(straight.TransformerLosses.Select(p => p[1]), resumed.TransformerLosses.Select(p => p[1]));

        using var ma = LayeredModel.Load(Path.Combine(PretrainCheckpoint.PathIn(a.Path), "model"));
        using var mb = LayeredModel.Load(Path.Combine(PretrainCheckpoint.PathIn(b.Path), "model"));
        Assert.Equal(straight.DecoderLosses.Select(p => p[1]), resumed.DecoderLosses.Select(p => p[1]));
        foreach (var (a1, b1) in new[] { (ma.Transformer.state_dict(), mb.Transformer.state_dict()), (ma.Vae.state_dict(), mb.Vae.state_dict()) })
        {
            foreach (var (name, t) in a1)
            {
                Assert.True(t.equal(b1[name]).all().item<bool>(), $"{name} differs after resume");
            }
        }
    }

    [Fact]
    public void ContinuedPretrainingStartsFromAModelFolderAndKeepsItsVae()
    {
        using var first = new TempDir();
        using var second = new TempDir();
        new TinyPretrainer(Config(3, 2), first.Path, TextWriter.Null).Run(resume: false);
        string model = Path.Combine(PretrainCheckpoint.PathIn(first.Path), "model");
        var state = new TinyPretrainer(Config(0, 3), second.Path, TextWriter.Null) { InitFrom = model }.Run(resume: false);
        Assert.Equal(PretrainStages.Done, state.Stage);
        Assert.Empty(state.VaeLosses);
        Assert.Equal(3, state.TransformerLosses.Count);
        using var before = LayeredModel.Load(model);
        using var after = LayeredModel.Load(Path.Combine(PretrainCheckpoint.PathIn(second.Path), "model"));
        foreach (var (name, t) in before.Vae.state_dict())
        {
            Assert.True(t.equal(after.Vae.state_dict()[name]).all().item<bool>(), $"VAE {name} changed");
        }

        Assert.Equal(before.Vae.Config.LatentsStd, after.Vae.Config.LatentsStd);
        Assert.False(before.Transformer.state_dict()["proj_out.weight"].equal(after.Transformer.state_dict()["proj_out.weight"]).all().item<bool>());
    }

    [Fact]
    public void ParameterEmaAveragesWithTheGivenDecayAndSwapsBack()
    {
        using var scope = NewDisposeScope();
        var p = new TorchSharp.Modules.Parameter(zeros(2));
        using var ema = new ParameterEma([p], decay: 0.75);
        using (no_grad())
        {
            p.fill_(1f);
        }

        ema.Update();
        Assert.Equal([0.25f, 0.25f], ema.Shadow[0].data<float>().ToArray());
        ema.Update();
        Assert.Equal([0.4375f, 0.4375f], ema.Shadow[0].data<float>().ToArray());
        float inside = 0;
        ema.WithAverage(() => inside = p[0].item<float>());
        Assert.Equal(0.4375f, inside);
        Assert.Equal(1f, p[0].item<float>());
        ema.CopyToParameters();
        Assert.Equal(0.4375f, p[0].item<float>());
    }

    [Fact]
    public void ResumedRunWithAverageMatchesUninterruptedRunAndShipsTheAverage()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        var config = Config(2, 5, emaDecay: 0.6);
        var straight = new TinyPretrainer(config, a.Path, TextWriter.Null).Run(resume: false);
        var first = new TinyPretrainer(config, b.Path, TextWriter.Null) { MaxStepsThisRun = 5 }.Run(resume: false);
        Assert.Equal(PretrainStages.Transformer, first.Stage);
        Assert.True(PretrainCheckpoint.HasAverage(b.Path));
        using (var raw = LayeredModel.Load(Path.Combine(PretrainCheckpoint.PathIn(b.Path), "model")))
        using (var average = LayeredModel.Load(PretrainCheckpoint.AveragePathIn(b.Path)))
        {
            Assert.False(raw.Transformer.state_dict()["proj_out.weight"].allclose(average.Transformer.state_dict()["proj_out.weight"]));
        }

        var resumed = new TinyPretrainer(config, b.Path, TextWriter.Null).Run(resume: true);
        Assert.Equal(PretrainStages.Done, resumed.Stage);
        Assert.False(PretrainCheckpoint.HasAverage(b.Path));
        using var ma = LayeredModel.Load(Path.Combine(PretrainCheckpoint.PathIn(a.Path), "model"));
        using var mb = LayeredModel.Load(Path.Combine(PretrainCheckpoint.PathIn(b.Path), "model"));
        foreach (var (name, t) in ma.Transformer.state_dict())
        {
            Assert.True(t.equal(mb.Transformer.state_dict()[name]).all().item<bool>(), $"{name} differs after resume");
        }

        // The shipped transformer is the average, not the last weights: one more run without it ends elsewhere.
        using var c = new TempDir();
        new TinyPretrainer(Config(2, 5), c.Path, TextWriter.Null).Run(resume: false);
        using var mc = LayeredModel.Load(Path.Combine(PretrainCheckpoint.PathIn(c.Path), "model"));
        Assert.False(ma.Transformer.state_dict()["proj_out.weight"].allclose(mc.Transformer.state_dict()["proj_out.weight"]));
    }

    [Theory]
    [InlineData(0.0, 0.188)]
    [InlineData(0.25, 0.391)]
    [InlineData(1.0, 1.0)]
    public void HighNoiseShareDrawsThatShareUniformlyAboveTheMinimum(double share, double expectedAbove)
    {
        using var scope = NewDisposeScope();
        var config = Config(0, 0) with { Pretrain = Config(0, 0).Pretrain! with { HighNoiseShare = share, HighNoiseMin = 0.8, LogitMean = 0.5, LogitStd = 1.0 } };
        var trainer = new TinyPretrainer(config, Path.GetTempPath(), TextWriter.Null);
        var sigma = trainer.SampleSigma(20000, CPU, new Generator(seed: 7)).data<float>().ToArray();
        Assert.All(sigma, s => Assert.InRange(s, 0f, 1f));
        // P(sigmoid(N(0.5, 1)) > 0.8) = P(N(0, 1) > ln 4 - 0.5) = 0.188; the uniform share lies above 0.8 entirely.
        double above = sigma.Count(s => s >= 0.8f) / (double)sigma.Length;
        Assert.InRange(above, expectedAbove - 0.015, expectedAbove + 0.015);
    }

    [Fact]
    public void DecoderLossComparesLayersAsTheEvaluationDoes()
    {
        using var scope = NewDisposeScope();
        // One pixel, [-1, 1]: ground truth opaque white; prediction black at alpha 0.5.
        var gt = tensor(new float[] { 1, 1, 1, 1 }).view(1, 4, 1, 1);
        var pred = tensor(new float[] { -1, -1, -1, 0 }).view(1, 4, 1, 1);
        // raw L1 = (2 + 2 + 2 + 1) / 4; on black |0 * 0.5 - 1| = 1; on white |0 + 0.5 - 1| = 0.5.
        Assert.Equal(1.75 + 1 + 0.5, TinyPretrainer.DecoderLoss(pred, gt).item<float>(), 5);
        // Colour under a fully transparent pixel costs only the raw term.
        var clearGt = tensor(new float[] { 1, 1, 1, -1 }).view(1, 4, 1, 1);
        var clearPred = tensor(new float[] { -1, -1, -1, -1 }).view(1, 4, 1, 1);
        Assert.Equal(1.5, TinyPretrainer.DecoderLoss(clearPred, clearGt).item<float>(), 5);
    }
}
