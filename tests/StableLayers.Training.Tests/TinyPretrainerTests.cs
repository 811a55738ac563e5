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
    private static LayeredModelConfig Config(int vaeSteps, int transformerSteps, int decoderSteps = 0) => new()
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
}
