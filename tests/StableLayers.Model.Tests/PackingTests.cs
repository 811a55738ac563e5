using System.Text.Json;
using StableLayers.Model.Pipeline;
using StableLayers.TestSupport;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class PackingTests
{
    [Fact]
    public void PackThenUnpackIsExact()
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        var latents = randn(new long[] { 2, 3, 16, 6, 10 });
        var tokens = LatentPacking.Pack(latents);
        Assert.Equal([2L, 3 * 3 * 5, 64], tokens.shape);
        var back = LatentPacking.Unpack(tokens, 3, 16, 6, 10);
        Assert.Equal(latents.shape, back.shape);
        Assert.True(back.equal(latents).all().item<bool>());
    }

    [Fact]
    public void TokenChannelIsCTimesFourPlusDyTimesTwoPlusDxFramesThenRowMajor()
    {
        using var scope = NewDisposeScope();
        const int b = 2, f = 2, c = 3, h = 4, w = 6;
        static float Code(int bi, int fi, int ci, int y, int x) => (bi * 10000) + (fi * 1000) + (ci * 100) + (y * 10) + x;
        var data = new float[b * f * c * h * w];
        int k = 0;
        for (int bi = 0; bi < b; bi++)
        for (int fi = 0; fi < f; fi++)
        for (int ci = 0; ci < c; ci++)
        for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
        {
            data[k++] = Code(bi, fi, ci, y, x);
        }

        var tokens = LatentPacking.Pack(tensor(data, [b, f, c, h, w]));
        var flat = tokens.contiguous().data<float>().ToArray();
        int tokensPerFrame = (h / 2) * (w / 2), channels = c * 4;
        Assert.Equal(tokensPerFrame, LatentPacking.TokensPerFrame(h, w));
        for (int bi = 0; bi < b; bi++)
        for (int fi = 0; fi < f; fi++)
        for (int py = 0; py < h / 2; py++)
        for (int px = 0; px < w / 2; px++)
        for (int ci = 0; ci < c; ci++)
        for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++)
        {
            int token = (fi * tokensPerFrame) + (py * (w / 2)) + px;
            int channel = (ci * 4) + (dy * 2) + dx;
            float got = flat[(((bi * f * tokensPerFrame) + token) * channels) + channel];
            Assert.Equal(Code(bi, fi, ci, (2 * py) + dy, (2 * px) + dx), got);
        }
    }

    [Fact]
    public void ConditionTokensFollowOutputFramesAndAreSlicedOffThePrediction()
    {
        using var scope = NewDisposeScope();
        var output = zeros(1, 5 * 4, 64); // 5 frames (composite + 4 layers) of 4 tokens
        var condition = ones(1, 4, 64);
        var input = LatentPacking.AppendCondition(output, condition);
        Assert.Equal([1L, 24, 64], input.shape);
        Assert.Equal(1f, input[0, 20, 0].item<float>());
        Assert.Equal(0f, input[0, 19, 63].item<float>());
        var part = LatentPacking.OutputPart(input, output.shape[1]);
        Assert.True(part.equal(output).all().item<bool>());
    }

    [Fact]
    public void OddOrMismatchedShapesAreRejected()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentException>(() => LatentPacking.Pack(zeros(new long[] { 1, 1, 16, 3, 4 })));
        Assert.Throws<ArgumentException>(() => LatentPacking.Unpack(zeros(1, 7, 64), 2, 16, 4, 4));
        Assert.Throws<ArgumentException>(() => LatentPacking.AppendCondition(zeros(1, 4, 64), zeros(2, 4, 64)));
    }

    [Theory]
    [InlineData(640, 640, 640, 640, 640)]
    [InlineData(1920, 1080, 640, 864, 480)]
    [InlineData(500, 2000, 640, 320, 1280)]
    public void BucketsKeepAreaAndAspectOnMultiplesOf32(int width, int height, int res, int bw, int bh)
    {
        var bucket = ResolutionBucket.For(width, height, res);
        Assert.Equal((bw, bh), (bucket.Width, bucket.Height));
        Assert.Equal(bh / 16 * (bw / 16), bucket.TokensPerFrame);
        Assert.Equal(bh / 8, bucket.LatentHeight);
    }

    [Fact]
    public void BucketsMatchTheReferenceScript()
    {
        var golden = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestData.GoldenDir, "scheduler_golden.json"))).RootElement;
        foreach (var c in golden.GetProperty("buckets").EnumerateArray())
        {
            var bucket = ResolutionBucket.For(
                c.GetProperty("width").GetInt32(), c.GetProperty("height").GetInt32(),
                c.GetProperty("resolution").GetInt32(), c.GetProperty("multiple").GetInt32());
            Assert.Equal((c.GetProperty("bucket_width").GetInt32(), c.GetProperty("bucket_height").GetInt32()), (bucket.Width, bucket.Height));
        }
    }

    [Fact]
    public void TinyBucketsAndBadMultiples()
    {
        // 2:1 at 32 px with multiple 16: sqrt(2048) = 45.3 -> 48, 22.6 -> 16
        Assert.Equal(new ResolutionBucket(48, 16), ResolutionBucket.For(64, 32, 32, 16));
        Assert.Equal(new ResolutionBucket(128, 128), ResolutionBucket.For(7, 7, 128, 16));
        // extreme aspect ratio never collapses a side to 0
        Assert.Equal(16, ResolutionBucket.For(10000, 1, 32, 16).Height);
        Assert.Throws<ArgumentException>(() => ResolutionBucket.For(64, 64, 64, 24));
    }
}
