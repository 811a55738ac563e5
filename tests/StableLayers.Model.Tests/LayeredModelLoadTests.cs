using StableLayers.Core;
using StableLayers.Model.Text;
using StableLayers.Model.Transformer;
using StableLayers.Model.Weights;
using StableLayers.TestSupport;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public sealed class LayeredModelLoadTests
{
    private static IEnumerable<(string Part, string Name, Tensor Value)> State(LayeredModel m) =>
        m.Transformer.state_dict().Select(kv => ("transformer", kv.Key, kv.Value))
            .Concat(m.Vae.state_dict().Select(kv => ("vae", kv.Key, kv.Value)))
            .Concat(((TinyTextEncoder)m.Prompts).state_dict().Select(kv => ("text_encoder", kv.Key, kv.Value)));

    [Fact]
    public void LoadsInBf16OnTheRequestedDeviceWithTheSavedValues()
    {
        using var scope = NewDisposeScope();
        using var tmp = new TempDir();
        var tokenizer = WordTokenizer.Build(["a red circle"]);
        using var model = LayeredModel.Create(LayeredModelTests.SmallConfig(), tokenizer, seed: 3);
        model.Save(tmp.Path);

        using var loaded = LayeredModel.Load(tmp.Path, ComputeDevice.Cpu, ScalarType.BFloat16);
        var saved = State(model).ToDictionary(s => s.Part + "/" + s.Name, s => s.Value);
        foreach (var (part, name, value) in State(loaded))
        {
            var want = saved[part + "/" + name];
            Assert.Equal(want.is_floating_point() ? ScalarType.BFloat16 : want.dtype, value.dtype);
            Assert.Equal(DeviceType.CPU, value.device_type);
            Assert.True(value.eq(want.to(value.dtype)).all().item<bool>(), $"{part}/{name}");
        }

        Assert.False(loaded.Transformer.training);
        Assert.Equal(ScalarType.Float32, get_default_dtype());
    }

    [Fact]
    public void AMismatchedVaeOrTruncatedTransformerIsBadInputNamingIt()
    {
        using var tmp = new TempDir();
        var tokenizer = WordTokenizer.Build(["a red circle"]);
        using (var model = LayeredModel.Create(LayeredModelTests.SmallConfig(), tokenizer, seed: 3))
        {
            model.Save(tmp.Path);
        }

        // A VAE saved from a different width: names match, shapes do not.
        var other = LayeredModelTests.SmallConfig();
        using (var vae = new Vae.AutoencoderKLQwenImage(other.Vae with { BaseDim = 16 }))
        {
            DiffusersCheckpoint.Save(vae, Path.Combine(tmp.Path, "vae"), vae.Config, ScalarType.Float32);
        }

        var ex = Assert.Throws<BadInputException>(() => LayeredModel.Load(tmp.Path, dtype: ScalarType.BFloat16));
        Assert.Equal(Path.Combine(tmp.Path, "vae"), ex.FilePath);
        Assert.Contains("shape mismatch", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', ex.Message);

        var shard = Path.Combine(tmp.Path, "transformer", DiffusersCheckpoint.WeightsName);
        File.WriteAllBytes(shard, File.ReadAllBytes(shard)[..^10]);
        Assert.Equal(shard, Assert.Throws<BadInputException>(() => LayeredModel.Load(tmp.Path)).FilePath);
    }

    [Fact]
    public void ModulesAreBuiltOnTheTargetAndTheDefaultsAreRestored()
    {
        var config = TransformerConfig.Tiny();
        using (var bf16 = ModuleAllocation.Create(() => new QwenImageTransformer2DModel(config), dtype: ScalarType.BFloat16))
        {
            Assert.All(bf16.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        }

        using (var meta = ModuleAllocation.Create(() => new QwenImageTransformer2DModel(config), META, ScalarType.BFloat16))
        {
            Assert.All(meta.parameters(), p => Assert.Equal(DeviceType.META, p.device_type));
            Assert.All(meta.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        }

        Assert.Throws<InvalidOperationException>(() =>
            ModuleAllocation.Create<nn.Module>(() => throw new InvalidOperationException("boom"), META, ScalarType.Float64));
        Assert.Equal(ScalarType.Float32, get_default_dtype());
        Assert.Equal(DeviceType.CPU, get_default_device().type);
        Assert.Equal(ScalarType.Float32, empty(2).dtype);
        Assert.Equal(DeviceType.CPU, empty(2).device_type);
    }
}
