using StableLayers.Core;
using StableLayers.Model.Text;
using StableLayers.TestSupport;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class PrecomputedPromptEncoderTests
{
    [Fact]
    public void LooksUpPromptsAndPadsWithAMask()
    {
        using var scope = NewDisposeScope();
        using var tmp = new TempDir();
        manual_seed(1);
        var a = randn(3, 8);
        var b = randn(5, 8);
        PrecomputedPromptEncoder.Write(tmp.File("prompts.safetensors"), [("a poster", a), (" ", b)]);
        var enc = new PrecomputedPromptEncoder(tmp.File("prompts.safetensors"));
        Assert.Equal(8, enc.Dim);
        var e = enc.Encode(["a poster", " "]);
        Assert.Equal([2L, 5, 8], e.Embeddings.shape);
        Assert.True(e.Embeddings[0].narrow(0, 0, 3).allclose(a));
        Assert.True(e.Embeddings[1].allclose(b));
        Assert.False(e.Mask[0, 3].item<bool>());
        Assert.True(e.Mask[1, 4].item<bool>());
        var err = Assert.Throws<BadInputException>(() => enc.Encode(["unknown prompt"]));
        Assert.Contains("unknown prompt", err.Message);
    }
}
