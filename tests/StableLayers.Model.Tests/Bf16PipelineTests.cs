using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Model.Inference;
using StableLayers.Model.Pipeline;
using StableLayers.Model.Schedulers;
using StableLayers.Model.Text;
using StableLayers.Model.Transformer;
using StableLayers.TestSupport;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

/// <summary>
/// A bf16 transformer as diffusers runs it: the timestep the pipeline feeds (bf16(bf16(1000 sigma) / 1000)), and
/// everything around the transformer (latents, schedule, SDE step, log-probabilities) left in float32/float64.
/// </summary>
public class Bf16PipelineTests(ITestOutputHelper output)
{
    private const string Prompt = "a red circle";

    /// <summary>Round-to-nearest-even to bfloat16 on the float's bits, written here independently of libtorch.</summary>
    private static float Bf16(float x)
    {
        uint u = BitConverter.SingleToUInt32Bits(x);
        u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
        return BitConverter.UInt32BitsToSingle(u);
    }

    /// <summary>QwenImageLayeredPipeline with bf16 latents: t = sigma * 1000 (float32), t.to(bf16), t / 1000 in bf16.</summary>
    private static float PipelineTimestep(float sigma)
    {
        float t = Bf16(sigma * 1000f);
        return Bf16(t / 1000f);
    }

    [Fact]
    public void Bf16TimestepIsRoundedAsTheDiffusersPipelineRoundsIt()
    {
        using var scope = NewDisposeScope();
        var schedule = FlowMatchScheduler.ForConditionTokens(1600).Schedule(50);
        int differsFromPlainCast = 0;
        for (int i = 0; i < schedule.Steps; i++)
        {
            float sigma = (float)schedule.Sigma(i);
            var bf = ModelTimestep.FromSigma(sigma, 3, ScalarType.BFloat16);
            Assert.Equal(ScalarType.BFloat16, bf.dtype);
            Assert.Equal([3L], bf.shape);
            var values = bf.to(ScalarType.Float32).data<float>().ToArray();
            Assert.All(values, v => Assert.Equal(PipelineTimestep(sigma), v));
            differsFromPlainCast += PipelineTimestep(sigma) != Bf16(sigma) ? 1 : 0;

            // float32 models get the float32 sigma itself.
            var f32 = ModelTimestep.FromSigma(sigma, 2, ScalarType.Float32);
            Assert.Equal(ScalarType.Float32, f32.dtype);
            Assert.All(f32.data<float>().ToArray(), v => Assert.Equal(sigma, v));
        }

        // The double rounding matters: a plain bf16 cast of sigma would differ at many steps.
        output.WriteLine($"pipeline bf16 timestep differs from bf16(sigma) at {differsFromPlainCast} of {schedule.Steps} steps");
        Assert.True(differsFromPlainCast >= 10, $"only {differsFromPlainCast} steps discriminate");
    }

    [Fact]
    public void Bf16TransformerIsCalledWithThePipelineTimestep()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var model = SmallModel(seed: 5);
        model.Transformer.to(ScalarType.BFloat16);
        var image = TestImages.Noise(32, 32, 7);
        const int layers = 2;
        using var conditioning = LayeredConditioning.Create(model, image, layers, [Prompt]);
        var x = conditioning.InitialNoise(new Generator(seed: 1), rows: 1);
        const float sigma = 0.8658523f; // step 30 of the 640 px, 50-step schedule: the two roundings differ here
        Assert.NotEqual(PipelineTimestep(sigma), Bf16(sigma));

        var v = conditioning.PackedVelocity(x, sigma);
        Assert.Equal(ScalarType.Float32, v.dtype);

        // The same call by hand with an explicit timestep.
        var latent = model.Vae.Normalize(model.Vae.EncodeMean(LayerTensors.FromImage(image).unsqueeze(0)));
        var tokens = LatentPacking.AppendCondition(LatentPacking.Pack(x), LatentPacking.Pack(latent.unsqueeze(1)));
        var text = model.Prompts.Encode([Prompt]);
        var frames = FrameShape.Layered(layers, conditioning.LatentHeight / 2, conditioning.LatentWidth / 2);
        long outputTokens = (layers + 1L) * LatentPacking.TokensPerFrame(conditioning.LatentHeight, conditioning.LatentWidth);
        Tensor Direct(float t) => LatentPacking.OutputPart(
            model.Transformer.forward(tokens, text.Embeddings, text.Mask, tensor(new[] { t }), frames), outputTokens).to(ScalarType.Float32);

        Assert.True(v.allclose(Direct(PipelineTimestep(sigma)), rtol: 0, atol: 0), "the pipeline timestep was not what the transformer saw");
        Assert.False(v.allclose(Direct(Bf16(sigma)), rtol: 0, atol: 0), "bf16(sigma) gives the same output: the test cannot tell the roundings apart");
    }

    [Fact]
    public void Bf16TransformerLeavesLatentsScheduleSdeStepAndLogProbsInFullPrecision()
    {
        using var scope = NewDisposeScope();
        using var model = SmallModel(seed: 6);
        model.Transformer.to(ScalarType.BFloat16);
        Assert.Equal(ScalarType.BFloat16, model.Transformer.DType);
        using var conditioning = LayeredConditioning.Create(model, TestImages.Noise(32, 32, 8), 2, [Prompt], copies: 2);
        var schedule = conditioning.Schedule(4);
        Assert.IsType<double[]>(schedule.Sigmas);
        var x0 = conditioning.InitialNoise(new Generator(seed: 2), rows: 2);
        Assert.Equal(ScalarType.Float32, x0.dtype);
        Assert.Equal(ScalarType.Float32, conditioning.Velocity(x0, (float)schedule.Sigma(0)).dtype);

        // Euler sampling (what decompose runs).
        var euler = EulerSampler.Instance.Sample(x0, schedule, conditioning.Velocity);
        Assert.Equal(ScalarType.Float32, euler.dtype);

        // GRPO sampling: SDE steps 0 and 1 stored with their log-probabilities.
        using var run = SdeSampling.Sample(x0, schedule, conditioning.Velocity, new SdeWindow(0, 2), 0.7, new Generator(seed: 3));
        Assert.Equal(ScalarType.Float32, run.Final.dtype);
        Assert.Equal(2, run.Transitions.Count);
        foreach (var t in run.Transitions)
        {
            Assert.All(new[] { t.X, t.XNext, t.MeanOld, t.Eps }, u => Assert.Equal(ScalarType.Float32, u.dtype));
            Assert.Equal(ScalarType.Float64, t.LogProbOld.dtype);
            Assert.True(t.LogProbOld.isfinite().all().item<bool>());

            // The update's recomputation (GrpoUpdate: SdeStep.Mean of a fresh velocity) is float32 and on-policy.
            using var noGrad = no_grad();
            var mean = SdeStep.Mean(t.X, conditioning.Velocity(t.X, (float)t.Sigma), t.Coefficients);
            Assert.Equal(ScalarType.Float32, mean.dtype);
            var logProb = SdeStep.LogProb(t.XNext, mean, t.Std);
            Assert.Equal(ScalarType.Float64, logProb.dtype);
            Assert.True(logProb.allclose(t.LogProbOld, rtol: 0, atol: 0), "recomputed log-probability differs from the stored one");
        }
    }

    /// <summary>
    /// The shipped tiny base with its transformer cast to bf16 (VAE and text encoder stay float32) against itself in
    /// float32, on the same input and seed: a short run that bounds the gap. The full measurement (20 steps, every
    /// step's output) is the benchmark's `bf16-gap` mode.
    /// </summary>
    [Fact]
    public void TinyBaseWithBf16TransformerStaysCloseToFloat32()
    {
        using var scope = NewDisposeScope();
        string dir = TestData.InRepo("models/tiny-base");
        using var m32 = LayeredModel.Load(dir);
        using var m16 = LayeredModel.Load(dir);
        m16.Transformer.to(ScalarType.BFloat16);
        var input = TwoTone(32, 32);
        var options = new DecomposeOptions { Layers = 2, Steps = 4, Seed = 4 };

        // Transformer output at the same (x, sigma) for every step's sigma.
        double velocityGap = 0;
        using (var noGrad = no_grad())
        {
            using var c32 = LayeredConditioning.Create(m32, input, options.Layers, [options.Prompt]);
            using var c16 = LayeredConditioning.Create(m16, input, options.Layers, [options.Prompt]);
            var x = c32.InitialNoise(new Generator(seed: 4), rows: 1);
            var schedule = c32.Schedule(options.Steps);
            for (int i = 0; i < schedule.Steps; i++)
            {
                float s = (float)schedule.Sigma(i);
                velocityGap = Math.Max(velocityGap, DiffusersGoldenTests.RelativeError(c32.Velocity(x, s), c16.Velocity(x, s)));
            }
        }

        var (maxByte, meanByte) = ImageDiff.LayerBytes(
            new LayeredDecomposer(m32).Decompose(input, options),
            new LayeredDecomposer(m16).Decompose(input, options));
        output.WriteLine($"tiny-base, bf16 transformer vs float32: output gap {velocityGap:G3}; decomposed layers max |diff| {maxByte}/255, mean {meanByte:G3}/255");
        Assert.True(velocityGap is > 0 and < 0.1, $"bf16 transformer output differs from float32 by {velocityGap}");
        Assert.True(maxByte < 64 && meanByte < 2, $"bf16 decomposition differs by up to {maxByte}/255 (mean {meanByte})");
    }

    /// <summary>An opaque image: a dark-blue background with a yellow square.</summary>
    private static RgbaImage TwoTone(int w, int h)
    {
        var image = new RgbaImage(w, h);
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                bool inside = x >= w / 4 && x < w * 3 / 4 && y >= h / 4 && y < h * 3 / 4;
                int i = ((y * w) + x) * 4;
                image.Pixels[i] = inside ? (byte)240 : (byte)20;
                image.Pixels[i + 1] = inside ? (byte)220 : (byte)40;
                image.Pixels[i + 2] = inside ? (byte)30 : (byte)120;
                image.Pixels[i + 3] = 255;
            }
        }

        return image;
    }

    private static LayeredModel SmallModel(long seed)
    {
        var model = LayeredModel.Create(LayeredModelTests.SmallConfig(), WordTokenizer.Build([Prompt]), seed);
        model.Transformer.eval();
        model.Vae.eval();
        ((TinyTextEncoder)model.Prompts).eval();
        return model;
    }

}
