using StableLayers.Core;
using StableLayers.Model.Vae;
using StableLayers.Model.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public sealed class WeightsCheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ckpt-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // Parameters, float buffers and an int64 buffer (BatchNorm's num_batches_tracked).
    private static nn.Module<Tensor, Tensor> SmallModule(int width = 6) =>
        nn.Sequential(("lin", nn.Linear(5, width)), ("bn", nn.BatchNorm1d(width)), ("out", nn.Linear(width, 3)));

    private static void Randomise(nn.Module m)
    {
        using var noGrad = no_grad();
        foreach (var (_, t) in m.state_dict())
        {
            if (t.is_floating_point())
            {
                t.copy_(randn_like(t));
            }
            else
            {
                t.fill_(17);
            }
        }
    }

    private static void AssertSameState(nn.Module a, nn.Module b, Func<Tensor, Tensor>? expect = null)
    {
        var sa = a.state_dict();
        var sb = b.state_dict();
        Assert.Equal(sa.Keys.Order(), sb.Keys.Order());
        foreach (var (k, t) in sa)
        {
            var want = expect is not null && t.is_floating_point() ? expect(t) : t;
            Assert.True(sb[k].to(float64).allclose(want.to(float64), rtol: 0, atol: 0), k);
        }
    }

    [Fact]
    public void Fp32RoundTripIsExactIncludingBuffers()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var a = SmallModule();
        Randomise(a);
        DiffusersCheckpoint.Save(a, _dir, new { hello = 1 }, ScalarType.Float32);
        Assert.True(File.Exists(Path.Combine(_dir, "config.json")));
        Assert.True(File.Exists(Path.Combine(_dir, DiffusersCheckpoint.WeightsName)));
        var b = SmallModule();
        var report = DiffusersCheckpoint.Load(b, _dir);
        Assert.True(report.IsExact, report.Describe());
        Assert.Equal(a.state_dict().Count, report.Loaded.Count);
        AssertSameState(a, b);
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void Bf16SaveLoadsIntoFp32AndIntoBf16()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        var a = SmallModule();
        Randomise(a);
        DiffusersCheckpoint.Save(a, _dir, new { }, ScalarType.BFloat16);
        using (var f = SafetensorsFile.Open(Path.Combine(_dir, DiffusersCheckpoint.WeightsName)))
        {
            Assert.Equal("BF16", f["lin.weight"].DType);
            Assert.Equal("I64", f["bn.num_batches_tracked"].DType);
        }

        var b = SmallModule();
        DiffusersCheckpoint.Load(b, _dir);
        Assert.Equal(ScalarType.Float32, b.state_dict()["lin.weight"].dtype);
        AssertSameState(a, b, t => t.to(bfloat16));

        var c = SmallModule();
        DiffusersCheckpoint.Load(c, _dir, dtype: ScalarType.BFloat16);
        Assert.Equal(ScalarType.BFloat16, c.state_dict()["lin.weight"].dtype);
        Assert.Equal(ScalarType.Int64, c.state_dict()["bn.num_batches_tracked"].dtype);
        AssertSameState(a, c, t => t.to(bfloat16));
    }

    [Fact]
    public void ShardedSaveWritesIndexAndLoadsBackAndResavingUnshardedRemovesShards()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var a = SmallModule(width: 64);
        Randomise(a);
        DiffusersCheckpoint.Save(a, _dir, new { }, ScalarType.Float32, maxShardBytes: 1024);
        var shards = Directory.GetFiles(_dir, "diffusion_pytorch_model-*-of-*.safetensors").Order(StringComparer.Ordinal).ToList();
        Assert.True(shards.Count >= 3, $"{shards.Count} shards");
        Assert.EndsWith($"-00001-of-{shards.Count:D5}.safetensors", shards[0], StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_dir, DiffusersCheckpoint.WeightsName)));
        var index = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, DiffusersCheckpoint.IndexName)));
        Assert.Equal(a.state_dict().Count, index.RootElement.GetProperty("weight_map").EnumerateObject().Count());
        long total = a.state_dict().Values.Sum(t => t.numel() * t.element_size());
        Assert.Equal(total, index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());

        var b = SmallModule(width: 64);
        Assert.True(DiffusersCheckpoint.Load(b, _dir).IsExact);
        AssertSameState(a, b);

        DiffusersCheckpoint.Save(a, _dir, new { }, ScalarType.Float32);
        Assert.Empty(Directory.GetFiles(_dir, "diffusion_pytorch_model-*"));
        Assert.False(File.Exists(Path.Combine(_dir, DiffusersCheckpoint.IndexName)));
        var c = SmallModule(width: 64);
        Assert.True(DiffusersCheckpoint.Load(c, _dir).IsExact);
    }

    [Fact]
    public void MissingUnexpectedAndMisshapenKeysAreReportedAndStrictThrows()
    {
        using var scope = NewDisposeScope();
        var saved = nn.Sequential(("lin", nn.Linear(5, 6)), ("extra", nn.Linear(2, 2)));
        DiffusersCheckpoint.Save(saved, _dir, new { }, ScalarType.Float32);
        var target = nn.Sequential(("lin", nn.Linear(5, 7)), ("other", nn.Linear(3, 3)));
        var before = target.state_dict()["lin.weight"].clone();

        var ex = Assert.Throws<BadInputException>(() => DiffusersCheckpoint.Load(target, _dir));
        Assert.Equal(_dir, ex.FilePath);
        Assert.Contains("other.weight", ex.Message, StringComparison.Ordinal);
        Assert.Contains("extra.bias", ex.Message, StringComparison.Ordinal);
        Assert.Contains("lin.weight: module [7,5], file [6,5]", ex.Message, StringComparison.Ordinal);
        Assert.True(target.state_dict()["lin.weight"].allclose(before)); // strict checks before copying

        var report = DiffusersCheckpoint.Load(target, _dir, strict: false);
        Assert.Equal(["other.bias", "other.weight"], report.Missing.Order(StringComparer.Ordinal));
        Assert.Equal(["extra.bias", "extra.weight"], report.Unexpected.Order(StringComparer.Ordinal));
        Assert.Equal(["lin.bias", "lin.weight"], report.Mismatched.Select(m => m.Name).Order(StringComparer.Ordinal));
        Assert.Equal([6L, 5], report.Mismatched.Single(m => m.Name == "lin.weight").FileShape);
        Assert.Empty(report.Loaded);
    }

    [Fact]
    public void TruncatedShardAndMissingFilesAreBadInputNamingTheFile()
    {
        using var scope = NewDisposeScope();
        var a = SmallModule(width: 64);
        DiffusersCheckpoint.Save(a, _dir, new { }, ScalarType.Float32, maxShardBytes: 1024);
        var shard = Directory.GetFiles(_dir, "diffusion_pytorch_model-*-of-*.safetensors").Order(StringComparer.Ordinal).Last();
        var bytes = File.ReadAllBytes(shard);
        File.WriteAllBytes(shard, bytes[..^3]);
        Assert.Equal(shard, Assert.Throws<BadInputException>(() => DiffusersCheckpoint.Load(SmallModule(64), _dir)).FilePath);

        File.Delete(shard);
        Assert.Equal(shard, Assert.Throws<BadInputException>(() => DiffusersCheckpoint.Load(SmallModule(64), _dir)).FilePath);

        var empty = Directory.CreateTempSubdirectory("ckpt-empty-").FullName;
        try
        {
            Assert.Equal(empty, Assert.Throws<BadInputException>(() => DiffusersCheckpoint.Load(SmallModule(), empty)).FilePath);
        }
        finally
        {
            Directory.Delete(empty);
        }
    }

    [Fact]
    public void TinyVaeLoadsStrictlyFromAFileInDiffusersNaming()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        var config = VaeConfig.Tiny(dimMult: [1, 2, 2]);

        // The file's names and shapes come from the analytic diffusers list, not from our modules.
        var tensors = config.ParameterShapes().Select(p => new KeyValuePair<string, Tensor>(p.Name, randn(p.Shape))).ToList();
        SafetensorsWriter.WriteFile(Path.Combine(_dir, DiffusersCheckpoint.WeightsName), tensors, ScalarType.BFloat16);

        using var vae = new AutoencoderKLQwenImage(config);
        var report = DiffusersCheckpoint.Load(vae, _dir, strict: true);
        Assert.True(report.IsExact);
        var w = vae.state_dict()["decoder.up_blocks.0.upsamplers.0.time_conv.weight"];
        Assert.True(w.allclose(tensors.Single(t => t.Key == "decoder.up_blocks.0.upsamplers.0.time_conv.weight").Value.to(bfloat16).to(float32)));
    }
}
