using StableLayers.Model.Pipeline;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class PackingRegroupingTests
{
    [Fact]
    public void TwoInputsTimesTwoCopiesTimesThreeLayersRegroupIntoFourStacksOfTheirOwnLayers()
    {
        using var scope = NewDisposeScope();
        const int inputs = 2, copies = 2, layers = 3, samples = inputs * copies;
        // latents [S, N+1, C, h, w] whose every value encodes (sample, frame)
        var latents = zeros(new long[] { samples, layers + 1, 1, 2, 2 });
        for (int s = 0; s < samples; s++)
        {
            for (int f = 0; f <= layers; f++)
            {
                latents[s, f].fill_((s * 10) + f);
            }
        }

        var toDecode = LayerRegrouping.DropCompositeFrame(latents);
        Assert.Equal([samples * layers, 1L, 2, 2], toDecode.shape);
        var decoded = toDecode; // the VAE would map each frame to an image, keeping the order

        var stacks = LayerRegrouping.SplitPerSample(decoded, samples, layers);
        Assert.Equal(samples, stacks.Count);
        for (int input = 0; input < inputs; input++)
        {
            for (int copy = 0; copy < copies; copy++)
            {
                int s = LayerRegrouping.SampleIndex(input, copy, copies);
                Assert.Equal(layers, (int)stacks[s].shape[0]);
                for (int l = 0; l < layers; l++)
                {
                    // layer l of the stack is frame l + 1 of sample s (the composite is gone)
                    Assert.Equal((s * 10) + l + 1, stacks[s][l, 0, 0, 0].item<float>());
                }
            }
        }

        // The public pipeline slices with the pre-drop count N + 1: its second stack would start inside sample 0.
        var buggySecond = decoded.narrow(0, layers + 1, layers);
        Assert.NotEqual(stacks[1][0, 0, 0, 0].item<float>(), buggySecond[0, 0, 0, 0].item<float>());
        Assert.True(decoded.shape[0] / (layers + 1) < samples, "the pre-drop stride would not even yield one stack per sample");
    }

    [Fact]
    public void WrongCountsAreRejected()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentException>(() => LayerRegrouping.SplitPerSample(zeros(16, 4), 4, 3));
        Assert.Throws<ArgumentException>(() => LayerRegrouping.DropCompositeFrame(zeros(new long[] { 2, 1, 16, 2, 2 })));
        Assert.Throws<ArgumentOutOfRangeException>(() => LayerRegrouping.SampleIndex(0, 2, 2));
    }
}
