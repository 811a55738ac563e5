using System.Globalization;
using System.Text.Json;
using StableLayers.Model.Pipeline;
using StableLayers.Model.Schedulers;
using StableLayers.Model.Transformer;
using StableLayers.Model.Vae;
using StableLayers.Model.Weights;
using StableLayers.TestSupport;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

/// <summary>
/// The port against the outputs diffusers' own modules computed (tests/golden/diffusers-golden, see its README):
/// tiny checkpoints in the diffusers layout are loaded with <see cref="DiffusersCheckpoint"/>, the inputs are run
/// through the port's public API, and every key of diffusers_outputs.safetensors is compared as
/// max|ref - port| / max|ref| (the README's measure) against its tolerance. Each test declares the keys it checks
/// (<see cref="KeysByTest"/>) and asserts it compared all of them; <see cref="EveryGoldenKeyIsCheckedByATest"/>
/// asserts the declarations cover the file exactly, so no key is silently skipped.
/// </summary>
public class DiffusersGoldenTests(ITestOutputHelper output)
{
    /// <summary>The README's tolerance: the port matched about 1e-6 when the data was made; room for other CPUs and libtorch builds.</summary>
    private const double Tolerance = 1e-4;

    private const string OutputsFile = "diffusers_outputs.safetensors";

    private const string Packed = "packed hidden_states (pipeline _pack_latents vs LatentPacking.Pack)";
    private const string Sinusoid = "timestep sinusoid (time_proj)";
    private const string SinusoidBf16 = "sinusoid of a bf16 timestep (Timesteps -> embeddings.get_timestep_embedding vs Sinusoidal)";
    private const string Output = "TRANSFORMER OUTPUT";
    private const string Bf16Case = "transformer_layered_b2_mask_bf16";
    private const string VaeCase = "vae";

    private static readonly string[] RopeKeys = ["RoPE image cos", "RoPE image sin", "RoPE text cos", "RoPE text sin"];
    private static readonly (int Tokens, int Steps)[] ScheduleCases = [(12, 20), (256, 50), (1600, 50), (4096, 50), (1600, 8), (1600, 1)];

    private static readonly Lazy<Dictionary<string, GoldenArray>> Reference = new(() => ReadArrays(Path.Combine(TestData.DiffusersGolden, OutputsFile)));

    /// <summary>Every key of the outputs file, by the test (and case) that checks it.</summary>
    private static Dictionary<string, string[]> KeysByTest { get; } = new()
    {
        ["transformer_layered_b1_nomask"] = TransformerKeys("transformer_layered_b1_nomask"),
        ["transformer_layered_b2_mask"] =
        [
            .. TransformerKeys("transformer_layered_b2_mask"),
            "transformer_layered_b2_mask: row 0 (port padded batch) vs diffusers unpadded single call (5 text tokens)",
            "transformer_layered_b2_mask: row 1 (port padded batch) vs diffusers unpadded single call (4 text tokens)",
        ],
        ["transformer_zero_cond_t_b1"] = TransformerKeys("transformer_zero_cond_t_b1"),
        [Bf16Case] = [$"{Bf16Case}: {Packed}", .. RopeKeys.Select(k => $"{Bf16Case}: {k}"), $"{Bf16Case}: {Sinusoid}", $"{Bf16Case}: {SinusoidBf16}"],
        [nameof(VaeEncodeNormaliseTokensAndDecodeMatchDiffusers)] =
        [
            "vae: encode posterior mean (latent_dist.mode())",
            "vae: normalised latents (_encode_vae_image)",
            "vae: condition tokens (prepare_latents)",
            "vae: decode (pipeline block + vae.decode, clamped)",
            "vae: decoder output before clamp",
        ],
        [nameof(SigmasAndTransformerTimestepsMatchDiffusers)] = ScheduleCases
            .SelectMany(c => new[] { SigmaKey(c.Tokens, c.Steps), TimestepKey(c.Tokens, c.Steps) }).ToArray(),
        [nameof(FiftyEulerStepsMatchDiffusers)] = ["scheduler: 50 Euler steps (scheduler.step vs EulerSampler.Update)"],
        [nameof(TrueCfgWithAndWithoutNormRescaleMatchesDiffusers)] = ["true CFG scale 4, cfg_normalize=False", "true CFG scale 4, cfg_normalize=True"],
        [nameof(ResolutionBucketsMatchDiffusers)] = ["resolution bucket (width, height) for 8 sizes x {640, 1024}, excluding sizes diffusers rounds to 0"],
    };

    [Fact]
    public void EveryGoldenKeyIsCheckedByATest()
    {
        var fileKeys = Reference.Value.Keys.ToHashSet(StringComparer.Ordinal);
        var declared = KeysByTest.Values.SelectMany(k => k).ToList();
        Assert.Equal(declared.Count, declared.Distinct(StringComparer.Ordinal).Count());
        var notChecked = fileKeys.Except(declared, StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var absent = declared.Except(fileKeys, StringComparer.Ordinal).ToList();
        Assert.True(notChecked.Count == 0, "golden keys no test checks:\n" + string.Join("\n", notChecked));
        Assert.True(absent.Count == 0, "declared keys missing from the golden file:\n" + string.Join("\n", absent));
        Assert.Equal(51, fileKeys.Count);
    }

    [Theory]
    [InlineData("transformer_layered_b1_nomask")]
    [InlineData("transformer_layered_b2_mask")]
    [InlineData("transformer_zero_cond_t_b1")]
    public void TransformerMatchesDiffusers(string caseName)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var check = new GoldenCheck(caseName, KeysByTest[caseName], output);
        var c = TransformerCase.Load(caseName);
        using var model = c.LoadModel();
        Assert.Equal(ScalarType.Float32, model.DType);

        var tokens = CheckPackingRopeAndSinusoid(check, c, model.Config);

        var y = model.forward(tokens, c.Text, c.Mask, c.Timestep, c.Frames, c.AdditionalTCond);
        check.Compare($"{caseName}: {Output}", y);

        if (c.Mask is not null && c.Batch > 1)
        {
            // Padded batch rows against diffusers' unpadded single calls; the port's own unpadded call must agree too.
            for (int b = 0; b < c.Batch; b++)
            {
                int valid = (int)c.Mask[b].sum().item<long>();
                string key = $"{caseName}: row {b} (port padded batch) vs diffusers unpadded single call ({valid} text tokens)";
                check.Compare(key, y[b]);
                var single = model.forward(tokens.narrow(0, b, 1), c.Text.narrow(0, b, 1).narrow(1, 0, valid), null,
                    c.Timestep.narrow(0, b, 1), c.Frames, c.AdditionalTCond?.narrow(0, b, 1));
                check.CompareExtra(key + " [port unpadded single call]", key, single[0]);
            }
        }

        check.AssertAllCompared();
    }

    /// <summary>
    /// The bf16 case has no pass/fail transformer output (README); its reference is the sinusoid diffusers computes
    /// for a bf16 timestep: frequencies kept in float32, only the timestep rounded.
    /// </summary>
    [Fact]
    public void Bf16TimestepSinusoidAndInputsMatchDiffusers()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var check = new GoldenCheck(Bf16Case, KeysByTest[Bf16Case], output);
        var c = TransformerCase.Load(Bf16Case);
        Assert.Equal("bfloat16", c.Metadata["dtype"]);
        using var model = c.LoadModel();
        CheckPackingRopeAndSinusoid(check, c, model.Config);
        check.Compare($"{Bf16Case}: {SinusoidBf16}", TimestepEmbedding.Sinusoidal(c.Timestep.to(ScalarType.BFloat16)));
        check.AssertAllCompared();
    }

    [Fact]
    public void VaeEncodeNormaliseTokensAndDecodeMatchDiffusers()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var check = new GoldenCheck(VaeCase, KeysByTest[nameof(VaeEncodeNormaliseTokensAndDecodeMatchDiffusers)], output);
        string dir = Path.Combine(TestData.DiffusersGolden, VaeCase);
        var (inputs, meta) = ReadTensors(Path.Combine(dir, "inputs.safetensors"));
        int layers = MetaInt(meta, "layers"), latH = MetaInt(meta, "latent_height"), latW = MetaInt(meta, "latent_width");
        string vaeDir = Path.Combine(dir, "vae");
        var config = JsonSerializer.Deserialize<VaeConfig>(File.ReadAllText(Path.Combine(vaeDir, DiffusersCheckpoint.ConfigName)))!;
        using var vae = new AutoencoderKLQwenImage(config);
        Assert.True(DiffusersCheckpoint.Load(vae, vaeDir).IsExact);
        vae.eval();

        // Encode as LayeredConditioning.Create does: posterior mean, normalised, packed as one frame.
        var mean = vae.EncodeMean(inputs["images"]);
        check.Compare("vae: encode posterior mean (latent_dist.mode())", mean);
        var normalised = vae.Normalize(mean);
        check.Compare("vae: normalised latents (_encode_vae_image)", normalised);
        check.Compare("vae: condition tokens (prepare_latents)", LatentPacking.Pack(normalised.unsqueeze(1)));

        // Decode as LayeredConditioning.Decode does: unpack, drop frame 0, de-normalise, decode, clamp.
        var finalTokens = inputs["final_tokens"];
        long rows = finalTokens.shape[0];
        var unpacked = LatentPacking.Unpack(finalTokens, layers + 1, config.ZDim, latH, latW);
        var layerLatents = unpacked.narrow(1, 1, layers).reshape(rows * layers, config.ZDim, latH, latW);
        var raw = vae.Decode(vae.Denormalize(layerLatents));
        check.Compare("vae: decoder output before clamp", raw);
        check.Compare("vae: decode (pipeline block + vae.decode, clamped)", raw.clamp(-1f, 1f));
        check.AssertAllCompared();
    }

    [Fact]
    public void SigmasAndTransformerTimestepsMatchDiffusers()
    {
        using var scope = NewDisposeScope();
        var check = new GoldenCheck("scheduler", KeysByTest[nameof(SigmasAndTransformerTimestepsMatchDiffusers)], output);
        foreach (var (tokens, steps) in ScheduleCases)
        {
            var schedule = FlowMatchScheduler.ForConditionTokens(tokens).Schedule(steps);
            // What the transformer receives per step (LayeredConditioning.PackedVelocity for a float32 model).
            var fed = cat(Enumerable.Range(0, steps).Select(i => ModelTimestep.FromSigma((float)schedule.Sigma(i), 1, ScalarType.Float32)).ToArray(), 0);
            if (steps == 1)
            {
                // Documented deviation (README): diffusers' 1-step schedule is 0/0 = NaN; the port keeps [1, 0].
                var refSigmas = check.Take(SigmaKey(tokens, steps));
                var refT = check.Take(TimestepKey(tokens, steps));
                Assert.True(float.IsNaN(refSigmas.Data[0]) && refSigmas.Data[1] == 0f && float.IsNaN(refT.Data[0]),
                    "diffusers' 1-step schedule is expected to be [NaN, 0]");
                Assert.Equal(new[] { 1.0, 0.0 }, schedule.Sigmas);
                Assert.Equal(1f, fed[0].item<float>());
                continue;
            }

            check.Compare(SigmaKey(tokens, steps), tensor(schedule.Sigmas));
            check.Compare(TimestepKey(tokens, steps), fed);
        }

        check.AssertAllCompared();
    }

    [Fact]
    public void FiftyEulerStepsMatchDiffusers()
    {
        using var scope = NewDisposeScope();
        var check = new GoldenCheck("scheduler", KeysByTest[nameof(FiftyEulerStepsMatchDiffusers)], output);
        var (inputs, _) = ReadTensors(Path.Combine(TestData.DiffusersGolden, "scheduler", "csharp.safetensors"));
        var c = inputs["euler_c"];
        var schedule = FlowMatchScheduler.ForConditionTokens(1600).Schedule(50);

        // v(x) = c - x through the port's sampler loop (FlowSampling.Sample with EulerSampler), 50 steps.
        var x = EulerSampler.Instance.Sample(inputs["euler_x0"], schedule, (xt, _) => c - xt);
        check.Compare("scheduler: 50 Euler steps (scheduler.step vs EulerSampler.Update)", x);
        check.AssertAllCompared();
    }

    [Fact]
    public void TrueCfgWithAndWithoutNormRescaleMatchesDiffusers()
    {
        using var scope = NewDisposeScope();
        var check = new GoldenCheck("scheduler", KeysByTest[nameof(TrueCfgWithAndWithoutNormRescaleMatchesDiffusers)], output);
        var (inputs, _) = ReadTensors(Path.Combine(TestData.DiffusersGolden, "scheduler", "csharp.safetensors"));
        var cond = inputs["cfg_cond"];
        var neg = inputs["cfg_neg"];
        check.Compare("true CFG scale 4, cfg_normalize=False", TrueCfg.Combine(cond, neg, 4f, normalize: false));
        check.Compare("true CFG scale 4, cfg_normalize=True", TrueCfg.Combine(cond, neg, 4f, normalize: true));
        check.AssertAllCompared();
    }

    [Fact]
    public void ResolutionBucketsMatchDiffusers()
    {
        using var scope = NewDisposeScope();
        const string key = "resolution bucket (width, height) for 8 sizes x {640, 1024}, excluding sizes diffusers rounds to 0";
        var check = new GoldenCheck("scheduler", KeysByTest[nameof(ResolutionBucketsMatchDiffusers)], output);
        int[][] sizes = [[640, 480], [1000, 1000], [333, 777], [1920, 1080], [512, 2048], [1023, 1025], [300, 4000], [17, 4000]];
        var rows = new List<float>();
        foreach (int resolution in new[] { 640, 1024 })
        {
            foreach (var wh in sizes)
            {
                var b = ResolutionBucket.For(wh[0], wh[1], resolution);
                rows.AddRange([b.Width, b.Height]);
            }
        }

        // Integers: exact.
        var expected = check.Take(key);
        Assert.Equal([sizes.Length * 2L, 2L], expected.Shape);
        Assert.Equal(expected.Data, rows.ToArray());
        check.AssertAllCompared();
    }

    /// <summary>Packing, RoPE tables and the float32 timestep sinusoid of a transformer case; returns the packed tokens.</summary>
    private static Tensor CheckPackingRopeAndSinusoid(GoldenCheck check, TransformerCase c, TransformerConfig config)
    {
        // Pipeline order: output frames, then the condition image (LayeredConditioning.PackedVelocity).
        var tokens = LatentPacking.AppendCondition(LatentPacking.Pack(c.Latents), LatentPacking.Pack(c.ConditionLatent));
        check.Compare($"{c.Name}: {Packed}", tokens);

        var rope = Layer3DRope.Tables(config.AxesDimsRope, c.Frames, (int)c.Text.shape[1]);
        Tensor[] tables = [rope.ImageCos, rope.ImageSin, rope.TextCos, rope.TextSin];
        for (int i = 0; i < RopeKeys.Length; i++)
        {
            check.Compare($"{c.Name}: {RopeKeys[i]}", tables[i]);
        }

        check.Compare($"{c.Name}: {Sinusoid}", TimestepEmbedding.Sinusoidal(c.Timestep));
        return tokens;
    }

    private static string[] TransformerKeys(string caseName) =>
        [$"{caseName}: {Packed}", .. RopeKeys.Select(k => $"{caseName}: {k}"), $"{caseName}: {Sinusoid}", $"{caseName}: {Output}"];

    private static string SigmaKey(int tokens, int steps) => $"scheduler: sigmas (tokens {tokens}, steps {steps}) float32 diffusers vs float64 port";

    private static string TimestepKey(int tokens, int steps) => $"scheduler: transformer timestep t/1000 (tokens {tokens}, steps {steps})";

    private static int MetaInt(IReadOnlyDictionary<string, string> meta, string name) => int.Parse(meta[name], CultureInfo.InvariantCulture);

    internal static double RelativeError(Tensor reference, Tensor port)
    {
        using var scope = NewDisposeScope();
        var r = reference.to(ScalarType.Float64);
        var p = port.to(ScalarType.Float64);
        return (r - p).abs().max().item<double>() / r.abs().max().item<double>();
    }

    /// <summary>Every tensor of a safetensors file, in the caller's dispose scope, plus its metadata.</summary>
    private static (Dictionary<string, Tensor> Tensors, IReadOnlyDictionary<string, string> Metadata) ReadTensors(string path)
    {
        using var file = SafetensorsFile.Open(path);
        return (file.Entries.ToDictionary(e => e.Name, e => file.Read(e.Name), StringComparer.Ordinal), file.Metadata);
    }

    /// <summary>
    /// The reference file as managed float arrays: loaded once, so its tensors must not belong to whichever test's
    /// dispose scope happens to trigger the load.
    /// </summary>
    private static Dictionary<string, GoldenArray> ReadArrays(string path)
    {
        using var scope = NewDisposeScope();
        using var file = SafetensorsFile.Open(path);
        return file.Entries.ToDictionary(
            e => e.Name,
            e => new GoldenArray(e.Shape.ToArray(), file.Read(e.Name).to(ScalarType.Float32).data<float>().ToArray()),
            StringComparer.Ordinal);
    }

    private sealed record GoldenArray(long[] Shape, float[] Data);

    /// <summary>Compares port tensors with reference keys, remembering which of the test's declared keys it compared.</summary>
    private sealed class GoldenCheck(string caseName, IReadOnlyList<string> declared, ITestOutputHelper output)
    {
        private readonly HashSet<string> compared = new(StringComparer.Ordinal);

        /// <summary>The reference array of a declared key (for comparisons that are not a relative error).</summary>
        public GoldenArray Take(string key)
        {
            Assert.True(declared.Contains(key), $"{caseName}: key not declared for this test: {key}");
            Assert.True(Reference.Value.TryGetValue(key, out var r), $"no golden key '{key}'");
            compared.Add(key);
            return r!;
        }

        /// <summary>max|ref - port| / max|ref| &lt;= tolerance, shapes equal, everything finite.</summary>
        public void Compare(string key, Tensor port, double tolerance = Tolerance)
        {
            var r = Take(key);
            CompareTo(key, r, port, tolerance);
        }

        /// <summary>A further port result checked against an already declared key.</summary>
        public void CompareExtra(string label, string key, Tensor port, double tolerance = Tolerance)
        {
            Assert.True(declared.Contains(key), $"{caseName}: key not declared for this test: {key}");
            CompareTo(label, Reference.Value[key], port, tolerance);
        }

        public void AssertAllCompared()
        {
            var missing = declared.Where(k => !compared.Contains(k)).ToList();
            Assert.True(missing.Count == 0, $"{caseName}: declared but not compared:\n" + string.Join("\n", missing));
        }

        private void CompareTo(string label, GoldenArray r, Tensor port, double tolerance)
        {
            Assert.Equal(r.Shape, port.shape);
            using var scope = NewDisposeScope();
            var p = port.detach().to(ScalarType.Float64).cpu().contiguous().data<double>().ToArray();
            double maxRef = 0, maxDiff = 0;
            for (int i = 0; i < p.Length; i++)
            {
                Assert.True(double.IsFinite(p[i]) && float.IsFinite(r.Data[i]), $"{label}: non-finite value at {i}");
                maxRef = Math.Max(maxRef, Math.Abs(r.Data[i]));
                maxDiff = Math.Max(maxDiff, Math.Abs(r.Data[i] - p[i]));
            }

            double rel = maxDiff / maxRef;
            output.WriteLine($"{rel,10:E2}  {label}");
            Assert.True(maxRef > 0, $"{label}: reference is all zero");
            Assert.True(rel <= tolerance, $"{label}: max|ref - port| / max|ref| = {rel:E3} > {tolerance:E1}");
        }
    }

    /// <summary>One transformer case folder: inputs, metadata and the frame layout they describe.</summary>
    private sealed record TransformerCase(
        string Name,
        IReadOnlyDictionary<string, string> Metadata,
        Tensor Latents,
        Tensor ConditionLatent,
        Tensor HiddenStates,
        Tensor Text,
        Tensor? Mask,
        Tensor Timestep,
        Tensor? AdditionalTCond,
        IReadOnlyList<FrameShape> Frames)
    {
        public long Batch => Latents.shape[0];

        public string Folder => Path.Combine(TestData.DiffusersGolden, Name);

        public static TransformerCase Load(string name)
        {
            var (t, meta) = ReadTensors(Path.Combine(TestData.DiffusersGolden, name, "inputs.safetensors"));
            int layers = MetaInt(meta, "layers"), latH = MetaInt(meta, "latent_height"), latW = MetaInt(meta, "latent_width");
            var frames = FrameShape.Layered(layers, latH / LatentPacking.PatchSize, latW / LatentPacking.PatchSize);

            // The layout the reference was computed with (img_shapes per frame) is the one the port builds.
            var refFrames = JsonSerializer.Deserialize<int[][]>(meta["frames"])!;
            Assert.Equal(refFrames.Select(f => (f[0], f[1], f[2])), frames.Select(f => (f.LayerIndex, f.Height, f.Width)));

            return new TransformerCase(name, meta, t["latents_unpacked"], t["cond_latent_unpacked"], t["hidden_states"],
                t["encoder_hidden_states"], t.GetValueOrDefault("encoder_hidden_states_mask"), t["timestep"],
                meta["pass_additional_t_cond"] == "1" ? t["additional_t_cond"] : null, frames);
        }

        /// <summary>The case's checkpoint loaded strictly into a float32 model built from its config.json.</summary>
        public QwenImageTransformer2DModel LoadModel()
        {
            string dir = Path.Combine(Folder, "transformer");
            var config = TransformerConfig.FromJson(File.ReadAllText(Path.Combine(dir, DiffusersCheckpoint.ConfigName)));
            var model = new QwenImageTransformer2DModel(config);
            Assert.True(DiffusersCheckpoint.Load(model, dir).IsExact);
            model.eval();
            return model;
        }
    }
}
