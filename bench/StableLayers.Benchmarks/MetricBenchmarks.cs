using BenchmarkDotNet.Attributes;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Metrics;
using StableLayers.Metrics.LayerD;

namespace StableLayers.Benchmarks;

/// <summary>One 640x640 5-layer sample through each metric protocol separately, and the full set.</summary>
[MemoryDiagnoser]
public class MetricBenchmarks
{
    private LayerStack pred = null!;
    private LayerStack gt = null!;
    private RgbaImage input = null!;
    private LayerPlanes[] predPlanes = null!;
    private LayerPlanes[] gtPlanes = null!;
    private float[] inputPlane = null!;

    [GlobalSetup]
    public void Setup()
    {
        (pred, gt) = BenchmarkSample.Create();
        input = gt.FlattenOnWhite();
        predPlanes = pred.Images.Select(LayerPlanes.From).ToArray();
        gtPlanes = gt.Images.Select(LayerPlanes.From).ToArray();
        inputPlane = LayerPlanes.RgbPlane(input);
    }

    [Benchmark(Description = "planes (float conversion of 10 layers)")]
    public int Planes() => pred.Images.Concat(gt.Images).Select(LayerPlanes.From).Count();

    [Benchmark(Description = "best-match L1 (Hungarian)")]
    public double BestMatch() => StackMetrics.BestMatch(predPlanes, gtPlanes).Mean;

    [Benchmark(Description = "LayerD protocol (5 edits)")]
    public double LayerD() => LayerDProtocol.Evaluate(pred, gt)!.RgbL1[0];

    [Benchmark(Description = "bad layers (blank/glazed/artifact/degenerate)")]
    public int BadLayers() => LayerQuality.Assess(predPlanes, inputPlane).BadLayers;

    [Benchmark(Description = "SSIM (one, 3 channels)")]
    public double? SsimOnce() => Ssim.Compute(predPlanes[0].OnWhite, gtPlanes[0].OnWhite, BenchmarkSample.Size, BenchmarkSample.Size);

    [Benchmark(Description = "connected components (4 layers)")]
    public int Components() => predPlanes.Skip(1).Sum(p => ConnectedComponents.Covered(p).Count);

    [Benchmark(Description = "evenness")]
    public double? Evenness() => StackMetrics.Evenness(predPlanes);

    [Benchmark(Description = "layer-0 SSIM + inpainting")]
    public double? Layer0() => StackMetrics.Layer0Ssim(predPlanes[0], gtPlanes[0]) + StackMetrics.Layer0InpaintL1(predPlanes[0], gtPlanes);

    [Benchmark(Description = "reconstruction L1")]
    public double Reconstruction() => StackMetrics.ReconstructionL1(predPlanes, inputPlane);

    [Benchmark(Description = "full metric set (one sample)")]
    public int Full() => DecompositionEvaluator.Evaluate("bench", pred, gt, input).BadLayers;
}
