using StableLayers.Model.Weights;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

/// <summary>
/// Host memory while loading a multi-shard checkpoint of ~300 MB: the increase over the load (beyond the module's
/// parameters, which exist before it starts) must stay within the largest shard plus 10%, and building the module in
/// bf16 must not pass through a float32 copy.
/// </summary>
public sealed class BoundedLoadingTests(ITestOutputHelper output) : IDisposable
{
    // 72 Linear(1024, 1024): 4.2 MB each in float32, 302 MB in all; 80 MB shards give 4 files.
    private const int Width = 1024;
    private const int Layers = 72;
    private const long MaxShardBytes = 80_000_000;

    private readonly string _dir = Directory.CreateTempSubdirectory("bounded-load-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static nn.Module<Tensor, Tensor> Stack() =>
        nn.Sequential(Enumerable.Range(0, Layers).Select(i => ($"l{i}", (nn.Module<Tensor, Tensor>)nn.Linear(Width, Width))).ToArray());

    private static long StateBytes(nn.Module m) => m.state_dict().Values.Sum(t => t.numel() * t.element_size());

    [Fact]
    public void ShardedLoadStaysWithinTheLargestShardInFloat32AndBf16()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        manual_seed(11);
        using var source = Stack();
        DiffusersCheckpoint.Save(source, _dir, new { }, ScalarType.Float32, MaxShardBytes);
        output.WriteLine($"written in {clock.Elapsed.TotalSeconds:F1} s");
        var shards = Directory.GetFiles(_dir, "diffusion_pytorch_model-*-of-*.safetensors");
        Assert.Equal(4, shards.Length);
        long largest = shards.Max(f => new FileInfo(f).Length);
        long total = shards.Sum(f => new FileInfo(f).Length);
        long bound = largest + largest / 10;

        // float32 into float32: every tensor is copied straight from its mapped range into the parameter.
        using var fp32 = Stack();
        var (report, fp32Peak, method) = HostMemory.MeasurePeakIncrease(() => DiffusersCheckpoint.Load(fp32, _dir, new LoadOptions()));
        output.WriteLine($"fp32 loaded at {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(report.IsExact, report.Describe());
        AssertLoaded(source, fp32, ScalarType.Float32);
        output.WriteLine($"fp32 compared at {clock.Elapsed.TotalSeconds:F1} s");

        // bf16: the module is built in bf16 (measured: no float32 copy), then each float32 tensor is staged and converted.
        var (bf16, buildPeak, _) = HostMemory.MeasurePeakIncrease(() => ModuleAllocation.Create(Stack, dtype: ScalarType.BFloat16));
        using var bf16Module = bf16;
        long bf16Bytes = StateBytes(bf16Module);
        var (_, bf16Peak, _) = HostMemory.MeasurePeakIncrease(() =>
            DiffusersCheckpoint.Load(bf16Module, _dir, new LoadOptions { DType = ScalarType.BFloat16 }));
        output.WriteLine($"bf16 loaded at {clock.Elapsed.TotalSeconds:F1} s");
        AssertLoaded(source, bf16Module, ScalarType.BFloat16);
        output.WriteLine($"bf16 compared at {clock.Elapsed.TotalSeconds:F1} s");

        output.WriteLine($"{shards.Length} shards, {total / 1e6:F1} MB in all, largest {largest / 1e6:F1} MB; bound {bound / 1e6:F1} MB ({method})");
        output.WriteLine($"load into float32: peak increase {fp32Peak / 1e6:F1} MB = {(double)fp32Peak / largest:F3} x largest shard");
        output.WriteLine($"load into bf16:    peak increase {bf16Peak / 1e6:F1} MB = {(double)bf16Peak / largest:F3} x largest shard");
        output.WriteLine($"build in bf16:     peak increase {buildPeak / 1e6:F1} MB for {bf16Bytes / 1e6:F1} MB of bf16 parameters (float32 would be {2 * bf16Bytes / 1e6:F1} MB)");
        Assert.True(fp32Peak <= bound, $"float32 load: peak +{fp32Peak / 1e6:F1} MB > {bound / 1e6:F1} MB");
        Assert.True(bf16Peak <= bound, $"bf16 load: peak +{bf16Peak / 1e6:F1} MB > {bound / 1e6:F1} MB");

        // bf16 parameters are half the float32 size; building in float32 first would need at least the float32 size.
        Assert.True(buildPeak < 1.5 * bf16Bytes, $"building in bf16 took +{buildPeak / 1e6:F1} MB for {bf16Bytes / 1e6:F1} MB of parameters");
    }

    private static void AssertLoaded(nn.Module source, nn.Module loaded, ScalarType dtype)
    {
        var want = source.state_dict();
        foreach (var (name, t) in loaded.state_dict())
        {
            Assert.Equal(dtype, t.dtype);
            using var scope = NewDisposeScope();
            Assert.True(t.eq(want[name].to(dtype)).all().item<bool>(), name);
        }
    }
}
