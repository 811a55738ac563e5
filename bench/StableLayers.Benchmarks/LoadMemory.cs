using System.Diagnostics;
using StableLayers.Model;
using StableLayers.Model.Tests;
using StableLayers.Model.Transformer;
using StableLayers.Model.Weights;
using static TorchSharp.torch;

namespace StableLayers.Benchmarks;

/// <summary>
/// `load` mode: writes a transformer checkpoint of the released architecture's full width (inner 3072, 24 heads, text
/// 3584; only the block count reduced) as bf16 shards, then loads it in bf16 the bounded way - module built directly
/// in bf16 (<see cref="ModuleAllocation"/>), tensors streamed shard by shard - and prints the peak host memory
/// increase of each phase against the module's own parameters and the largest shard, and the times. Optionally also
/// the float32-first path (module built in float32, converted, then loaded) for comparison, in the same run.
/// </summary>
public static class LoadMemory
{
    public static void Run(string configPath, int layers, long shardBytes, bool compareFloat32First)
    {
        var config = LayeredModelConfig.Load(configPath).Transformer with { NumLayers = layers };
        string dir = Directory.CreateTempSubdirectory("load-bench-").FullName;
        try
        {
            var clock = Stopwatch.StartNew();
            using (var writer = ModuleAllocation.Create(() => new QwenImageTransformer2DModel(config), dtype: ScalarType.BFloat16))
            {
                DiffusersCheckpoint.Save(writer, dir, config, ScalarType.BFloat16, shardBytes);
            }

            var shards = DiffusersCheckpoint.ResolveFiles(dir);
            long largest = shards.Max(f => new FileInfo(f).Length);
            long total = shards.Sum(f => new FileInfo(f).Length);
            Console.WriteLine($"transformer {configPath}: inner {config.InnerDim}, text {config.JointAttentionDim}, {layers} blocks, {config.ParameterCount() / 1e6:F0}M parameters; {get_num_threads()} threads");
            Console.WriteLine($"  wrote {shards.Count} bf16 shards, {total / 1e6:F0} MB in all, largest {largest / 1e6:F0} MB, in {clock.Elapsed.TotalSeconds:F1} s");

            clock.Restart();
            var (module, buildPeak, method) = HostMemory.MeasurePeakIncrease(() =>
                ModuleAllocation.Create(() => new QwenImageTransformer2DModel(config), dtype: ScalarType.BFloat16));
            double buildS = clock.Elapsed.TotalSeconds;
            using (module)
            {
                long paramBytes = module.state_dict().Values.Sum(t => t.numel() * t.element_size());
                var cpu = Process.GetCurrentProcess().TotalProcessorTime;
                clock.Restart();
                var (report, loadPeak, _) = HostMemory.MeasurePeakIncrease(() =>
                    DiffusersCheckpoint.Load(module, dir, new LoadOptions { DType = ScalarType.BFloat16 }));
                double loadS = clock.Elapsed.TotalSeconds;
                double loadCpuS = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
                clock.Restart();
                DiffusersCheckpoint.Load(module, dir, new LoadOptions { DType = ScalarType.BFloat16 });
                double againS = clock.Elapsed.TotalSeconds;
                if (!report.IsExact)
                {
                    throw new InvalidOperationException(report.Describe());
                }

                Console.WriteLine($"  peak host memory increase ({method}); the module's bf16 parameters are {paramBytes / 1e6:F0} MB:");
                Console.WriteLine($"    build in bf16 (random init):  +{buildPeak / 1e6,7:F0} MB = {(double)buildPeak / paramBytes:F3} x parameters   {buildS,6:F1} s");
                Console.WriteLine($"    stream the shards in:         +{loadPeak / 1e6,7:F0} MB = {(double)loadPeak / largest:F3} x largest shard   {loadS,6:F1} s ({total / 1e6 / loadS:F0} MB/s, {loadCpuS:F1} s CPU; again: {againS:F1} s)");
                Console.WriteLine($"    beyond the parameters, build + stream: {(double)(Math.Max(buildPeak - paramBytes, 0) + loadPeak) / largest:F3} x largest shard (bound 1.1)");
            }

            if (compareFloat32First)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                clock.Restart();
                var (_, fp32Peak, _) = HostMemory.MeasurePeakIncrease(() =>
                {
                    using var m = new QwenImageTransformer2DModel(config);
                    DiffusersCheckpoint.Load(m, dir, ScalarType.BFloat16);
                    return 0;
                });
                Console.WriteLine($"    for comparison, build in float32 then convert and load: +{fp32Peak / 1e6:F0} MB peak = {(double)fp32Peak / largest:F3} x largest shard, {clock.Elapsed.TotalSeconds:F1} s");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
