using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Data.Synthesis;
using StableLayers.TestSupport;

namespace StableLayers.Judges.Tests;

/// <summary>Ground-truth decompositions with their input image: real-psd-dev folders and synthetic designs.</summary>
public static class Samples
{
    public static IEnumerable<string> RealIds => TestData.RealPsdDevSamples.Select(Path.GetFileName).Select(s => s!);

    public static (LayerStack Gt, RgbaImage Input) Real(string id)
    {
        string dir = Path.Combine(TestData.RealPsdDev, id);
        var gt = LayeredFolder.Read(dir);
        return (gt, LayeredFolder.ReadComposite(dir) ?? gt.FlattenOnWhite());
    }

    /// <summary>Synthetic sample <paramref name="index"/> (layer counts cycle 2..5) at <paramref name="size"/> px.</summary>
    public static (LayerStack Gt, RgbaImage Input) Synth(int index, int size = 128, int seed = 5)
    {
        var gt = new SynthGenerator(new SynthOptions { Size = size, MinLayers = 2, MaxLayers = 5, Seed = seed }).Generate(index).Stack;
        return (gt, gt.FlattenOnWhite());
    }
}
