using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class LayerTensorsTests
{
    [Fact]
    public void StackRoundTripsThroughTensorExactly()
    {
        using var scope = NewDisposeScope();
        var a = new RgbaImage(5, 3);
        var b = new RgbaImage(5, 3);
        new Random(1).NextBytes(a.Pixels);
        new Random(2).NextBytes(b.Pixels);
        var t = LayerTensors.FromStack(new LayerStack(a, b));
        Assert.Equal([2L, 4, 3, 5], t.shape);
        Assert.True(t.min().item<float>() >= -1f && t.max().item<float>() <= 1f);
        // pixel (x=1, y=2) of layer 1, channel A
        Assert.Equal((b.Pixels[(((2 * 5) + 1) * 4) + 3] / 127.5f) - 1f, t[1, 3, 2, 1].item<float>(), 6);
        var back = LayerTensors.ToStack(t);
        Assert.True(back[0].PixelsEqual(a));
        Assert.True(back[1].PixelsEqual(b));
    }

    [Fact]
    public void RgbConditionIsFlattenedOnWhite()
    {
        using var scope = NewDisposeScope();
        var img = RgbaImage.Filled(2, 2, 0, 0, 0, 0);
        var t = LayerTensors.RgbFromImage(img);
        Assert.Equal([3L, 2, 2], t.shape);
        Assert.True(t.allclose(ones(3, 2, 2)));
    }
}
