using StableLayers.Core;
using StableLayers.Model.Text;
using StableLayers.TestSupport;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class TinyTextEncoderTests
{
    private static readonly string[] Captions =
    [
        "a red circle and the word SALE over a blue gradient",
        "a translucent green panel over gray and yellow stripes",
        "a black star with a purple border over a white and green gradient",
    ];

    [Fact]
    public void TokenizerIsLowerCaseWordLevelWithUnknownAndSavesExactly()
    {
        var tok = WordTokenizer.Build(Captions);
        Assert.Equal("<pad>", tok.Vocabulary[0]);
        var ids = tok.Encode("A RED circle, zebra!", 10);
        Assert.Equal(4, ids.Length);
        Assert.Equal(WordTokenizer.Unknown, ids[3]);
        Assert.Equal(tok.Vocabulary.ToList().IndexOf("red"), ids[1]);
        using var tmp = new TempDir();
        tok.Save(tmp.File("vocab.json"));
        Assert.Equal(tok.Vocabulary, WordTokenizer.Load(tmp.File("vocab.json")).Vocabulary);
        File.WriteAllText(tmp.File("bad.json"), "{");
        Assert.Throws<BadInputException>(() => WordTokenizer.Load(tmp.File("bad.json")));
    }

    [Fact]
    public void PaddingDoesNotChangeTheEmbeddingsOfRealTokens()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var enc = new TinyTextEncoder(new TinyTextEncoderConfig { HiddenSize = 32, NumHeads = 4, NumLayers = 2 }, WordTokenizer.Build(Captions));
        enc.eval();
        var alone = enc.Encode(["a red circle"]);
        var padded = enc.Encode(["a red circle", Captions[2]]);
        Assert.Equal(3, alone.Embeddings.shape[1]);
        Assert.True(padded.Embeddings[0].narrow(0, 0, 3).allclose(alone.Embeddings[0], rtol: 1e-4, atol: 1e-5));
        Assert.False(padded.Mask[0, 5].item<bool>());
        Assert.Equal(0f, padded.Embeddings[0, 5].abs().sum().item<float>());
        var other = enc.Encode(["a blue circle"]);
        Assert.False(other.Embeddings.allclose(alone.Embeddings, atol: 1e-3));
    }

    [Fact]
    public void EncoderLearnsToSeparatePrompts()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        var enc = new TinyTextEncoder(new TinyTextEncoderConfig { HiddenSize = 16, NumHeads = 2, NumLayers = 1 }, WordTokenizer.Build(Captions));
        var head = nn.Linear(16, 1);
        var opt = optim.AdamW(enc.parameters().Concat(head.parameters()), lr: 1e-2);
        var target = tensor(new float[] { 1, -1, 0.5f });
        float first = 0, last = 0;
        for (int step = 0; step < 60; step++)
        {
            using var s = NewDisposeScope();
            opt.zero_grad();
            var e = enc.Encode(Captions);
            var pooled = (e.Embeddings * e.Mask.unsqueeze(-1)).sum(1) / e.Mask.sum(1, keepdim: true);
            var loss = (head.call(pooled).squeeze(-1) - target).pow(2).mean();
            loss.backward();
            opt.step();
            if (step == 0)
            {
                first = loss.item<float>();
            }

            last = loss.item<float>();
        }

        Assert.True(last < first * 0.1f, $"loss {first} -> {last}");
    }
}
