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
        // latents[bi, fi, ci, y, x] = Code(...), filled in row-major order
        var data = new float[b * f * c * h * w];
        for (int k = 0; k < data.Length; k++)
        {
            int x = k % w, y = k / w % h, ci = k / (w * h) % c, fi = k / (w * h * c) % f, bi = k / (w * h * c * f);
            data[k] = Code(bi, fi, ci, y, x);
        }

        var tokens = LatentPacking.Pack(tensor(data, [b, f, c, h, w]));
        var flat = tokens.contiguous().data<float>().ToArray();
        int patchesPerRow = w / 2, tokensPerFrame = h / 2 * patchesPerRow, channels = c * 4;
        Assert.Equal(tokensPerFrame, LatentPacking.TokensPerFrame(h, w));
        Assert.Equal(data.Length, flat.Length);
        for (int k = 0; k < flat.Length; k++)
        {
            // decode the packed position: [bi, token, channel] with token = fi*T + py*(w/2) + px, channel = ci*4 + dy*2 + dx
            int channel = k % channels, token = k / channels % (f * tokensPerFrame), bi = k / (channels * f * tokensPerFrame);
            int fi = token / tokensPerFrame, py = token % tokensPerFrame / patchesPerRow, px = token % patchesPerRow;
            int ci = channel / 4, dy = channel % 4 / 2, dx = channel % 2;
            Assert.Equal(Code(bi, fi, ci, (2 * py) + dy, (2 * px) + dx), flat[k]);
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
