using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.Model;
using StableLayers.Model.Lora;
using StableLayers.Model.Schedulers;
using StableLayers.TestSupport;
using StableLayers.Training.Grpo;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Training.Tests;

/// <summary>
/// While it lives, libtorch's default device is <c>meta</c>: a tensor created without an explicit device lands
/// there, and the first op mixing it with the model's CPU tensors (or a host read of it) throws.
/// </summary>
internal sealed class StrayTensorGuard : IDisposable
{
    public StrayTensorGuard() => set_default_device(new Device(DeviceType.META));

    public void Dispose() => set_default_device(CPU);
}

public sealed class GrpoDeviceTests : IDisposable
{
    private readonly TempDir dir = new();


    [Theory]
    [InlineData("sum-rescale", 0.0)]
    [InlineData("none", 0.1)]
    public void SamplingAndAGrpoUpdateCreateEveryTensorOnTheModelsDeviceWithOneHostReadPerUpdate(string mode, double klBeta)
    {
        using var scope = NewDisposeScope();
        using var model = LayeredModel.Load(TinyRandomModel.Write(Path.Combine(dir.Path, "model")), ComputeDevice.Cpu);
        using var adapters = LoraAdapters.Inject(model.Transformer, new LoraConfig { Rank = 2, Alpha = 2, TargetModules = LoraConfig.AttentionAndFeedForward }, seed: 1);
        using var optimizer = optim.AdamW(adapters.TrainableParameters(), 1e-2);
        var settings = new RolloutSettings(GroupSize: 3, Steps: 4, NoiseLevel: 1.0, SdeKind.Sde, Prompt: string.Empty);
        var device = ComputeDevice.Of(model.Device);
        var groups = new List<GroupRollout>();
        try
        {
            long beforeSampling = HostReads.Count;
            using (new StrayTensorGuard())
            {
                groups.Add(GrpoStep.SampleGroup(model, new TrainingImage("a", TestImages.Noise(16, 16, 1)), 2, settings, new SdeWindow(0, 2), device.Generator(7)));
                groups.Add(GrpoStep.SampleGroup(model, new TrainingImage("b", TestImages.Noise(16, 16, 2)), 3, settings, new SdeWindow(1, 1), device.Generator(8)));
            }

            // Sampling reads the host once per group: its decoded candidates.
            Assert.Equal(2, HostReads.Count - beforeSampling);
            Assert.Equal(3, groups[0].Candidates.Count);

            IReadOnlyList<IReadOnlyList<double?>> advantages = [[1.0, -0.5, null], [0.3, -0.3, 0.0]];
            var update = new UpdateSettings(SettingEnum.Parse<RatioMode>(mode, "mode"), 0.5, 0.2, klBeta, StepWeight: true, GradClip: 1e-3);
            long beforeUpdate = HostReads.Count;
            UpdateStats stats;
            using (new StrayTensorGuard())
            {
                stats = GrpoStep.UpdateMinibatch(groups, advantages, adapters, optimizer, update);
            }

            Assert.Equal(1, HostReads.Count - beforeUpdate);
            Assert.False(stats.NonFinite);
            Assert.Equal(3, stats.TrainedBatches);
            Assert.Equal(2 + 2 + 3, stats.TrainedSamples);
            Assert.All(stats.FirstLogRatios, r => Assert.Equal(0.0, r));
            Assert.Equal(2, stats.FirstLogRatios.Count);
            Assert.True(stats.GradNorm > 1e-3, "the clip must be active for this test");

            // The one batched read puts every statistic in its place: on-policy, r = 1 for every sample and the
            // LoRA-disabled reference equals the policy (B = 0), so the loss is sum over terms of -mean(A) / |dt| / terms.
            int terms = groups.Sum(g => g.Transitions.Count);
            double expectedLoss = groups.Select((g, i) => (g, a: advantages[i].OfType<double>().Average()))
                .SelectMany(x => x.g.Transitions.Select(t => -x.a * GrpoStep.InverseDtWeight(t.Coefficients) / terms)).Sum();
            Assert.Equal(expectedLoss, stats.Loss, 12);
            Assert.NotEqual(0.0, stats.Loss);
            Assert.Equal(1.0, stats.RatioMean, 12);
            Assert.Equal(0.0, stats.RatioStd);
            Assert.Equal(0.0, stats.LogRatioStd);
            Assert.Equal(0.0, stats.ClipFraction);
            Assert.Equal(0.0, stats.Kl);
        }
        finally
        {
            foreach (var g in groups)
            {
                g.Dispose();
            }
        }
    }

    [Theory]
    [InlineData(1e-3)]
    [InlineData(1e6)]
    public void ClippingOnTheDeviceIsBitIdenticalToLibtorchs(double maxNorm)
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(11);
        TorchSharp.Modules.Parameter[] Parameters()
        {
            generator.manual_seed(11);
            return [.. new long[][] { [3, 5], [7], [2, 2, 4] }.Select(shape =>
            {
                var p = new TorchSharp.Modules.Parameter(randn(shape, generator: generator));
                p.grad = randn(shape, generator: generator) * 3;
                return p;
            })];
        }

        var ours = Parameters();
        var theirs = Parameters();
        double norm = HostReads.Scalars(GradientClipping.ClipTotalNorm(ours, maxNorm))[0];
        double reference = nn.utils.clip_grad_norm_(theirs, maxNorm);
        Assert.Equal(reference, norm);
        for (int i = 0; i < ours.Length; i++)
        {
            Assert.Equal(theirs[i].grad!.data<float>().ToArray(), ours[i].grad!.data<float>().ToArray());
        }

        Assert.Equal(maxNorm < 1, !ours[0].grad!.allclose(Parameters()[0].grad!));
    }

    public void Dispose() => dir.Dispose();
}

public class PretrainDeviceTests
{
    [Fact]
    public void AFlowMatchingStepCreatesEveryTensorOnTheModelsDeviceAndReadsTheHostOnce()
    {
        using var scope = NewDisposeScope();
        var config = new LayeredModelConfig
        {
            Name = "test",
            Resolution = 16,
            Transformer = Model.Transformer.TransformerConfig.Tiny(layers: 1, heads: 2, headDim: 16, textDim: 16, inChannels: 16, outChannels: 4),
            Vae = Model.Vae.VaeConfig.Tiny(baseDim: 8, zDim: 4, dimMult: [1, 2]),
            TextEncoder = new Model.Text.TinyTextEncoderConfig { HiddenSize = 16, NumHeads = 2, NumLayers = 1 },
            Pretrain = new PretrainSettings { CaptionDropout = 0.5 },
        };
        var samples = new Data.Synthesis.SynthGenerator(new Data.Synthesis.SynthOptions { Size = 16, MinLayers = 2, MaxLayers = 2 }).Generate(0, 3).ToList();
        using var model = LayeredModel.Create(config, Model.Text.WordTokenizer.Build(samples.Select(s => s.Caption)), seed: 1);
        var trainer = new Pretraining.TinyPretrainer(config, Path.GetTempPath(), TextWriter.Null);
        var parameters = model.Transformer.parameters().ToList();
        long before = HostReads.Count;
        double loss;
        using (new StrayTensorGuard())
        {
            var l = trainer.FlowMatchingLoss(model, samples, ComputeDevice.Of(model.Device).Generator(42));
            l.backward();
            GradientClipping.ClipTotalNorm(parameters, 1.0);
            loss = HostReads.Scalars(l)[0];
        }

        // One read for the caption dropout draws, one for the logged loss.
        Assert.Equal(2, HostReads.Count - before);
        Assert.True(double.IsFinite(loss) && loss > 0);
    }
}
