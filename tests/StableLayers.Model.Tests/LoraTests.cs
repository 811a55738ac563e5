using StableLayers.Core;
using StableLayers.Model.Lora;
using StableLayers.Model.Transformer;
using StableLayers.Model.Weights;
using StableLayers.TestSupport;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class LoraTests(ITestOutputHelper output)
{
    private static readonly string[] BlockModules =
    [
        "attn.to_q", "attn.to_k", "attn.to_v", "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj",
        "attn.to_out.0", "attn.to_add_out", "img_mlp.net.0.proj", "img_mlp.net.2", "txt_mlp.net.0.proj", "txt_mlp.net.2",
    ];

    private static QwenImageTransformer2DModel NewModel(long seed = 3)
    {
        manual_seed(seed);
        var model = new QwenImageTransformer2DModel(TransformerTestData.Config);
        model.eval();
        return model;
    }

    private static TransformerTestData NewData()
    {
        manual_seed(11);
        return TransformerTestData.Create();
    }

    private static void RandomizeB(LoraAdapters adapters, long seed, double std = 0.2)
    {
        var g = new Generator(seed: (ulong)seed);
        using var noGrad = no_grad();
        foreach (var l in adapters.Layers)
        {
            using var scope = NewDisposeScope();
            l.B.copy_(randn(l.B.shape, generator: g) * std);
        }
    }

    /// <summary>Same shape, dtype and every element bit-equal.</summary>
    private static bool Identical(Tensor a, Tensor b) =>
        a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.eq(b).all().item<bool>();

    private static Dictionary<string, Tensor> CloneState(nn.Module m) =>
        m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());

    [Fact]
    public void InjectionAdaptsTheTwelveModulesPerBlockAndLeavesTheBaseStateDictUnchanged()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel();
        var before = CloneState(model);
        using var adapters = LoraAdapters.Inject(model, new LoraConfig(), seed: 1);

        var expected = Enumerable.Range(0, TransformerTestData.Config.NumLayers)
            .SelectMany(i => BlockModules.Select(m => $"transformer_blocks.{i}.{m}")).Order(StringComparer.Ordinal);
        Assert.Equal(expected, adapters.Layers.Select(l => l.ModuleName).Order(StringComparer.Ordinal));

        var after = model.state_dict();
        Assert.Equal(before.Keys, after.Keys);
        foreach (var (k, v) in before)
        {
            Assert.True(Identical(v, after[k]), k);
        }

        // The adapter module's own state is just the two factors (the base Linear is referenced, not registered).
        Assert.Equal(["lora_A.weight", "lora_B.weight"], adapters.Layers[0].state_dict().Keys.ToArray());
        Assert.Equal(new LoraConfig().TrainableParameterCount(TransformerTestData.Config), adapters.TrainableParameterCount);
    }

    [Fact]
    public void FreshAdaptersEqualTheBaseBitForBitAndADrawsFromTheSeed()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel();
        var data = NewData();
        var baseline = data.Run(model);
        using (var adapters = LoraAdapters.Inject(model, new LoraConfig(), seed: 5))
        {
            Assert.True(Identical(data.Run(model), baseline), "zero-B adapters changed the output");
            foreach (var l in adapters.Layers)
            {
                double bound = 1 / Math.Sqrt(l.InFeatures);
                Assert.Equal([16L, l.InFeatures], l.A.shape);
                Assert.Equal([l.OutFeatures, 16L], l.B.shape);
                Assert.Equal(ScalarType.Float32, l.A.dtype);
                Assert.Equal(0, l.B.abs().max().item<float>());
                Assert.True(l.A.abs().max().item<float>() <= bound);
                Assert.True(l.A.std().item<float>() > bound / 3, "A is not spread over the kaiming-uniform range");
            }

            using var same = NewModel();
            using var again = LoraAdapters.Inject(same, new LoraConfig(), seed: 5);
            using var other = NewModel();
            using var differentSeed = LoraAdapters.Inject(other, new LoraConfig(), seed: 6);
            Assert.True(Identical(again.Layers[3].A, adapters.Layers[3].A));
            Assert.False(Identical(differentSeed.Layers[3].A, adapters.Layers[3].A));
        }

        // Disposing removes the hooks.
        Assert.True(Identical(data.Run(model), baseline));
    }

    [Fact]
    public void NonzeroBChangesTheOutputAndDisablingGivesTheBaseExactly()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel();
        var data = NewData();
        var baseline = data.Run(model);
        using var adapters = LoraAdapters.Inject(model, new LoraConfig(), seed: 1);
        RandomizeB(adapters, 2);
        var adapted = data.Run(model);
        Assert.False(adapted.allclose(baseline, rtol: 1e-3, atol: 1e-4), "a nonzero B should change the output");

        adapters.Enabled = false;
        Assert.True(Identical(data.Run(model), baseline), "disabled adapters must give the base output");
        adapters.Enabled = true;
        Assert.True(Identical(data.Run(model), adapted));
    }

    [Fact]
    public void DropoutActsInTrainingModeOnlyAndASecondInjectionIsRefused()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel();
        var data = NewData();
        using var adapters = LoraAdapters.Inject(model, new LoraConfig { Dropout = 0.5 }, seed: 1);
        RandomizeB(adapters, 2);
        var evalOut = data.Run(model);
        Assert.True(Identical(data.Run(model), evalOut), "eval mode must not drop");
        model.train();
        manual_seed(1);
        var train1 = data.Run(model);
        var train2 = data.Run(model);
        Assert.False(train1.allclose(train2, rtol: 1e-4, atol: 1e-5), "training mode should drop adapter inputs");
        model.eval();

        var twice = Assert.Throws<InvalidOperationException>(() => LoraAdapters.Inject(model, new LoraConfig(), seed: 2));
        Assert.Contains("already has a LoRA adapter", twice.Message, StringComparison.Ordinal);
        Assert.True(Identical(data.Run(model), evalOut), "the refused injection must leave the first adapters alone");
    }

    [Fact]
    public void MergedOutputMatchesTheHookAndUnmergeRestoresTheBaseWeights()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel();
        var data = NewData();
        var baseWeights = CloneState(model);
        using var adapters = LoraAdapters.Inject(model, new LoraConfig { Rank = 4, Alpha = 8 }, seed: 1);
        RandomizeB(adapters, 3);
        var adapted = data.Run(model);

        adapters.Merge();
        Assert.True(adapters.IsMerged);
        var q = adapters["transformer_blocks.1.attn.to_q"];
        var expectedQ = baseWeights["transformer_blocks.1.attn.to_q.weight"] + 2.0 * matmul(q.B, q.A);
        Assert.True(q.Base.weight!.allclose(expectedQ, rtol: 0, atol: 1e-6), "merge must add (alpha/r) B A");
        var merged = data.Run(model);
        Assert.True(merged.allclose(adapted, rtol: 1e-4, atol: 1e-5), $"merged differs by {(merged - adapted).abs().max().item<float>()}");
        Assert.Throws<InvalidOperationException>(() => adapters.Enabled = false);

        adapters.Unmerge();
        foreach (var (k, v) in model.state_dict())
        {
            Assert.True(v.allclose(baseWeights[k], rtol: 0, atol: 1e-6), k);
        }

        Assert.True(data.Run(model).allclose(adapted, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void SaveThenLoadGivesTheSameKeysShapesMetadataAndOutputs()
    {
        using var scope = NewDisposeScope();
        using var tmp = new TempDir();
        string path = tmp.File("lora/adapter.safetensors");
        var data = NewData();
        Tensor adapted;
        using (var model = NewModel())
        using (var adapters = LoraAdapters.Inject(model, new LoraConfig { Rank = 4, Alpha = 6 }, seed: 1))
        {
            RandomizeB(adapters, 4);
            adapted = data.Run(model);
            adapters.Save(path);
        }

        using (var file = SafetensorsFile.Open(path))
        {
            var block0 = file.Entries.Where(e => e.Name.StartsWith("transformer.transformer_blocks.0.", StringComparison.Ordinal)).ToList();
            var expected = BlockModules.SelectMany(m => new[] { $"transformer.transformer_blocks.0.{m}.lora_A.weight", $"transformer.transformer_blocks.0.{m}.lora_B.weight" });
            Assert.Equal(expected.Order(StringComparer.Ordinal), block0.Select(e => e.Name).Order(StringComparer.Ordinal));
            Assert.Equal(24 * TransformerTestData.Config.NumLayers, file.Entries.Count);
            Assert.All(file.Entries, e => Assert.Equal("F32", e.DType));
            Assert.Equal([4L, 32], file["transformer.transformer_blocks.0.attn.to_q.lora_A.weight"].Shape);
            Assert.Equal([32L, 4], file["transformer.transformer_blocks.0.attn.to_q.lora_B.weight"].Shape);
            Assert.Equal([4L, 32], file["transformer.transformer_blocks.0.img_mlp.net.0.proj.lora_A.weight"].Shape);
            Assert.Equal([128L, 4], file["transformer.transformer_blocks.0.img_mlp.net.0.proj.lora_B.weight"].Shape);
            Assert.Equal([4L, 128], file["transformer.transformer_blocks.0.txt_mlp.net.2.lora_A.weight"].Shape);
            Assert.Equal("4", file.Metadata["rank"]);
            Assert.Equal("6", file.Metadata["alpha"]);
            Assert.Contains("img_mlp.net.0.proj", file.Metadata["target_modules"], StringComparison.Ordinal);
            Assert.Contains("\"transformer.lora_alpha\":6", file.Metadata[LoraAdapters.DiffusersMetadataKey], StringComparison.Ordinal);
        }

        using var fresh = NewModel();
        var before = CloneState(fresh);
        using var loaded = LoraAdapters.Load(fresh, path);
        Assert.Equal(4, loaded.Config.Rank);
        Assert.Equal(6, loaded.Config.Alpha);
        Assert.Equal(before.Keys, fresh.state_dict().Keys);
        Assert.True(Identical(data.Run(fresh), adapted), "a loaded adapter must reproduce the saved model's output");

        // Save again from the loaded adapters: same names and shapes.
        string again = tmp.File("again.safetensors");
        loaded.Save(again);
        using var f1 = SafetensorsFile.Open(path);
        using var f2 = SafetensorsFile.Open(again);
        Assert.Equal(f1.Entries.Select(e => (e.Name, string.Join(",", e.Shape))).Order(), f2.Entries.Select(e => (e.Name, string.Join(",", e.Shape))).Order());
    }

    [Fact]
    public void AlphaDefaultsToTheRankWithoutMetadataAndUnprefixedKeysLoad()
    {
        using var scope = NewDisposeScope();
        using var tmp = new TempDir();
        using var model = NewModel();
        var a = randn(8, 32) * 0.1;
        var b = randn(32, 8) * 0.1;
        SafetensorsWriter.WriteFile(tmp.File("l.safetensors"),
            [new("transformer_blocks.1.attn.to_v.lora_A.weight", a), new("transformer_blocks.1.attn.to_v.lora_B.weight", b.to(ScalarType.BFloat16))]);
        using var loaded = LoraAdapters.Load(model, tmp.File("l.safetensors"));
        Assert.Equal(8, loaded.Config.Rank);
        Assert.Equal(8, loaded.Config.Alpha);
        Assert.Equal(1.0, loaded.Layers.Single().Scale);
        Assert.Equal("transformer_blocks.1.attn.to_v", loaded.Layers.Single().ModuleName);
        Assert.True(Identical(loaded.Layers.Single().A, a));
        Assert.Equal(ScalarType.Float32, loaded.Layers.Single().B.dtype);
    }

    [Fact]
    public void OnlyAdapterParametersRequireAndReceiveGradients()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel();
        model.train();
        var data = NewData();
        using var adapters = LoraAdapters.Inject(model, new LoraConfig(), seed: 1);
        RandomizeB(adapters, 5, std: 0.05);
        data.Run(model).square().mean().backward();

        Assert.All(model.parameters(), p => Assert.False(p.requires_grad));
        Assert.All(model.parameters(), p => Assert.True(p.grad is null));
        var trainable = adapters.TrainableParameters();
        Assert.Equal(2 * adapters.Layers.Count, trainable.Count);
        Assert.Equal(adapters.TrainableParameterCount, trainable.Sum(p => p.numel()));
        Assert.All(trainable, p => Assert.True(p.requires_grad));
        AssertAdapterGradients(adapters);
    }

    /// <summary>
    /// Every adapter whose output reaches the image tokens gets a nonzero gradient. In the last block the text
    /// stream's query, output projection and MLP only feed the (discarded) text output: their gradients are absent or 0.
    /// </summary>
    private static void AssertAdapterGradients(LoraAdapters adapters)
    {
        string last = $"transformer_blocks.{TransformerTestData.Config.NumLayers - 1}.";
        string[] textOnly = ["attn.add_q_proj", "attn.to_add_out", "txt_mlp.net.0.proj", "txt_mlp.net.2"];
        foreach (var l in adapters.Layers)
        {
            bool reaches = !textOnly.Any(t => l.ModuleName == last + t);
            foreach (var p in new[] { l.A, l.B })
            {
                float g = p.grad is null ? 0 : p.grad.abs().sum().item<float>();
                Assert.True(reaches ? g > 0 : g == 0, $"{l.ModuleName}: gradient {g}");
            }
        }
    }

    [Fact]
    public void AFewAdamStepsOnTheAdaptersReduceAToyRegressionLoss()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel();
        model.train();
        var data = NewData();
        manual_seed(12);
        var target = randn(data.Run(model).shape);
        using var adapters = LoraAdapters.Inject(model, new LoraConfig { Rank = 4, Alpha = 4 }, seed: 1);
        using var optimizer = optim.Adam(adapters.TrainableParameters(), lr: 1e-2);
        var losses = new List<float>();
        for (int step = 0; step < 8; step++)
        {
            using var stepScope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.mse_loss(data.Run(model), target);
            loss.backward();
            optimizer.step();
            losses.Add(loss.item<float>());
        }

        output.WriteLine(string.Join(" ", losses.Select(l => l.ToString("F4", System.Globalization.CultureInfo.InvariantCulture))));
        Assert.True(losses[^1] < losses[0] * 0.98, $"loss {losses[0]} -> {losses[^1]}");
    }

    [Fact]
    public void Bf16BaseRunsWithFloat32Adapters()
    {
        using var scope = NewDisposeScope();
        var data = NewData();
        using var reference = NewModel();
        using var referenceAdapters = LoraAdapters.Inject(reference, new LoraConfig(), seed: 1);
        RandomizeB(referenceAdapters, 6);
        var fp32Adapted = data.Run(reference);

        using var model = NewModel();
        using var adapters = LoraAdapters.Inject(model, new LoraConfig(), seed: 1, baseDType: ScalarType.BFloat16);
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        Assert.All(adapters.TrainableParameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        var zeroB = data.Run(model);
        Assert.Equal(ScalarType.BFloat16, zeroB.dtype);
        adapters.Enabled = false;
        Assert.True(Identical(data.Run(model), zeroB), "zero-B adapters must equal the bf16 base");
        adapters.Enabled = true;

        RandomizeB(adapters, 6);
        var adapted = data.Run(model);
        Assert.Equal(ScalarType.BFloat16, adapted.dtype);
        var err = (adapted.to(ScalarType.Float32) - fp32Adapted).abs().max().item<float>();
        using var plain = NewModel();
        var effect = (fp32Adapted - data.Run(plain)).abs().max().item<float>();
        output.WriteLine($"bf16 vs fp32 adapted: max err {err}, adapter effect {effect}");
        Assert.True(err < effect / 4, $"bf16 error {err} vs adapter effect {effect}");

        // Merging into bf16 weights rounds the sum; the merged model stays within bf16 error of the hook path.
        var bf16Weights = CloneState(model);
        adapters.Merge();
        var mergeErr = (data.Run(model).to(ScalarType.Float32) - adapted.to(ScalarType.Float32)).abs().max().item<float>();
        Assert.True(mergeErr < effect / 4, $"bf16 merge error {mergeErr} vs adapter effect {effect}");
        adapters.Unmerge();
        foreach (var (k, v) in model.state_dict())
        {
            Assert.Equal(ScalarType.BFloat16, v.dtype);
            Assert.True(v.to(ScalarType.Float32).allclose(bf16Weights[k].to(ScalarType.Float32), rtol: 2e-2, atol: 1e-3), k);
        }

        adapted = data.Run(model);
        adapted.to(ScalarType.Float32).square().mean().backward();
        AssertAdapterGradients(adapters);
        Assert.All(adapters.TrainableParameters(), p => Assert.True(p.grad is null || p.grad.dtype == ScalarType.Float32));
    }

    [Fact]
    public void BadFilesAndTargetsGiveClearErrors()
    {
        using var scope = NewDisposeScope();
        using var tmp = new TempDir();
        using var model = NewModel();

        var missing = Assert.Throws<BadInputException>(() => LoraAdapters.Load(model, tmp.File("none.safetensors")));
        Assert.Contains("none.safetensors", missing.Message, StringComparison.Ordinal);

        string Write(string name, params (string Key, Tensor Value)[] tensors)
        {
            string p = tmp.File(name);
            SafetensorsWriter.WriteFile(p, tensors.Select(t => new KeyValuePair<string, Tensor>(t.Key, t.Value)).ToList());
            return p;
        }

        string Error(string path) => Assert.Throws<BadInputException>(() => LoraAdapters.Load(model, path)).Message;

        var unknown = Error(Write("unknown.safetensors",
            ("transformer.transformer_blocks.7.attn.to_q.lora_A.weight", zeros(4, 32)), ("transformer.transformer_blocks.7.attn.to_q.lora_B.weight", zeros(32, 4))));
        Assert.Contains("unknown.safetensors", unknown, StringComparison.Ordinal);
        Assert.Contains("no Linear module 'transformer_blocks.7.attn.to_q'", unknown, StringComparison.Ordinal);

        var shape = Error(Write("shape.safetensors",
            ("transformer.transformer_blocks.0.attn.to_q.lora_A.weight", zeros(4, 31)), ("transformer.transformer_blocks.0.attn.to_q.lora_B.weight", zeros(32, 4))));
        Assert.Contains("shape [4,31] is not [r, 32]", shape, StringComparison.Ordinal);

        var rankMismatch = Error(Write("rank.safetensors",
            ("transformer.transformer_blocks.0.attn.to_q.lora_A.weight", zeros(4, 32)), ("transformer.transformer_blocks.0.attn.to_q.lora_B.weight", zeros(32, 5))));
        Assert.Contains("lora_B.weight': shape [32,5] is not [32, 4]", rankMismatch, StringComparison.Ordinal);

        var unpaired = Error(Write("unpaired.safetensors", ("transformer.transformer_blocks.0.attn.to_q.lora_A.weight", zeros(4, 32))));
        Assert.Contains("has lora_A but no lora_B", unpaired, StringComparison.Ordinal);

        var notLora = Error(Write("base.safetensors", ("transformer_blocks.0.attn.to_q.weight", zeros(32, 32))));
        Assert.Contains("is not a LoRA weight", notLora, StringComparison.Ordinal);

        File.WriteAllText(tmp.File("garbage.safetensors"), "not a safetensors file");
        Assert.Contains("garbage.safetensors", Error(tmp.File("garbage.safetensors")), StringComparison.Ordinal);

        // Nothing was attached by the failed loads.
        Assert.All(model.parameters(), p => Assert.True(p.requires_grad));

        var noMatch = Assert.Throws<ArgumentException>(() => LoraAdapters.Inject(model, new LoraConfig { TargetModules = ["attn.to_q", "attn.to_qq"] }, seed: 1));
        Assert.Contains("attn.to_qq", noMatch.Message, StringComparison.Ordinal);
        var notLinear = Assert.Throws<ArgumentException>(() => LoraAdapters.Inject(model, new LoraConfig { TargetModules = ["attn.norm_q"] }, seed: 1));
        Assert.Contains("not a Linear", notLinear.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => LoraAdapters.Inject(model, new LoraConfig { Rank = 0 }, seed: 1));
    }

    [Fact]
    public void TrainableParameterCountsFromTheConfigAlone()
    {
        var r16 = new LoraConfig();
        long full = r16.TrainableParameterCount(TransformerConfig.Full);
        long tiny = r16.TrainableParameterCount(LayeredModelConfig.Load(Path.Combine(TestData.RepoRoot, "configs", "tiny.json")).Transformer);
        output.WriteLine($"LoRA r16 trainable: full {full:N0} ({100.0 * full / TransformerConfig.Full.ParameterCount():F3}% of {TransformerConfig.Full.ParameterCount():N0}), tiny.json {tiny:N0}");
        // Per block: 8 attention projections 3072x3072 and 4 MLP Linears 3072<->12288, each r (in + out).
        Assert.Equal(60L * 16 * ((8 * 6144) + (4 * 15360)), full);
        Assert.Equal(106_168_320, full);
        Assert.Equal(4L * 16 * ((8 * 256) + (4 * 640)), tiny);
        Assert.Equal(2 * full, new LoraConfig { Rank = 32 }.TrainableParameterCount(TransformerConfig.Full));
    }
}
