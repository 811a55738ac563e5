using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Data.Synthesis;

namespace StableLayers.Benchmarks;

/// <summary>
/// The benchmark's sample: a 640x640 5-layer synthetic design (ground truth) and a plausible imperfect
/// prediction of it (each foreground layer shifted by a few pixels, the top one half as opaque, plus a faint wash).
/// Written to disk by <c>write-sample</c> so LayerD's Python can be timed on the very same files.
/// </summary>
public static class BenchmarkSample
{
    public const int Size = 640;

    public static (LayerStack Pred, LayerStack Gt) Create()
    {
        var generator = new SynthGenerator(new SynthOptions { Size = Size, MinLayers = 5, MaxLayers = 5, Seed = 2026 });
        var gt = generator.Generate(0).Stack;
        var pred = new List<RgbaImage> { gt[0].Clone() };
        for (int k = 1; k < gt.Count; k++)
        {
            var shifted = ImageShift.Shift(gt[k], 3 * k, -2 * k);
            if (k == gt.Count - 1)
            {
                for (int i = 3; i < shifted.Pixels.Length; i += 4)
                {
                    shifted.Pixels[i] = (byte)(shifted.Pixels[i] / 2);
                }
            }

            pred.Add(shifted);
        }

        return (new LayerStack(pred.ToArray()), gt);
    }

    public static void Write(string dir)
    {
        var (pred, gt) = Create();
        LayeredFolder.Write(Path.Combine(dir, "pred", "sample"), pred);
        LayeredFolder.Write(Path.Combine(dir, "gt", "sample"), gt);
    }
}
