using StableLayers.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class TorchSmokeTests
{
    [Fact]
    public void NativeLibraryLoadsAndReportsVersion()
    {
        var text = TorchRuntime.Describe();
        Assert.Contains("libtorch", text);
    }

    [Fact]
    public void ForwardAndBackwardThroughLinearLayerGiveAnalyticGradient()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var lin = nn.Linear(3, 1);
        var x = tensor(new float[] { 1f, 2f, 3f }).reshape(1, 3);
        var y = lin.call(x).sum();
        y.backward();
        // d(sum(Wx+b))/dW = x, /db = 1
        var gw = lin.weight!.grad!;
        Assert.True(gw.allclose(x), "weight gradient should equal the input");
        Assert.Equal(1f, lin.bias!.grad!.item<float>(), 6);
    }
}
