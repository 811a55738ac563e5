using StableLayers.Model.Transformer;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class TransformerRopeTests
{
    [Fact]
    public void ImagePositionsFollowLayerIndexAndCentredRowsAndColumns()
    {
        // Two output frames and the condition image, 3 rows x 2 columns each (odd height: one more negative row,
        // as diffusers' scale_rope takes -(H - H/2) .. H/2 - 1).
        var frames = FrameShape.Layered(layers: 1, height: 3, width: 2);
        var pos = Layer3DRope.ImagePositions(frames);
        long[][] frame =
        [
            [-2, -1], [-2, 0],
            [-1, -1], [-1, 0],
            [0, -1], [0, 0],
        ];
        long[] layers = [0, 1, -1];
        Assert.Equal(18, pos.GetLength(0));
        for (int f = 0; f < 3; f++)
        {
            for (int t = 0; t < 6; t++)
            {
                int i = (f * 6) + t;
                Assert.Equal(layers[f], pos[i, 0]);
                Assert.Equal(frame[t][0], pos[i, 1]);
                Assert.Equal(frame[t][1], pos[i, 2]);
            }
        }
    }

    [Fact]
    public void EvenSizesAreCentredSymmetrically()
    {
        var pos = Layer3DRope.ImagePositions([new FrameShape(2, 4, 4)]);
        Assert.Equal(-2, pos[0, 1]);
        Assert.Equal(-2, pos[0, 2]);
        Assert.Equal(1, pos[15, 1]);
        Assert.Equal(1, pos[15, 2]);
        Assert.Equal(2, pos[7, 0]);
    }

    [Fact]
    public void TextStartsAfterTheLargestOfHalfSizesAndOutputFrameCount()
    {
        // 640 px: 40x40 tokens, 4 layers -> max(20, 20, 5) = 20.
        Assert.Equal(20, Layer3DRope.TextOffset(FrameShape.Layered(4, 40, 40)));
        // Many layers on a small grid: the layer count (N + 1 output frames) wins.
        Assert.Equal(5, Layer3DRope.TextOffset(FrameShape.Layered(4, 4, 4)));
        // Non-square: the larger half side wins.
        Assert.Equal(4, Layer3DRope.TextOffset(FrameShape.Layered(1, 8, 6)));
    }

    [Fact]
    public void TextTablesUseOffsetPlusIndexOnAllAxes()
    {
        using var scope = NewDisposeScope();
        int[] axes = [4, 6, 6];
        var frames = FrameShape.Layered(4, 4, 4);
        var tables = Layer3DRope.Tables(axes, frames, textLength: 3);
        var (c, s) = Layer3DRope.Angles(axes, tensor(new long[,] { { 5, 5, 5 }, { 6, 6, 6 }, { 7, 7, 7 } }));
        Assert.True(tables.TextCos.allclose(c) && tables.TextSin.allclose(s));
        Assert.Equal([3L, 8], tables.TextCos.shape);
        Assert.Equal([96L, 8], tables.ImageCos.shape);
        // First axis, first pair: angle = layer index x 1 (theta^0).
        var imageSin = tables.ImageSin.select(1, 0);
        Assert.Equal(Math.Sin(-1), imageSin[95].item<float>(), 5);
        Assert.Equal(Math.Sin(4), imageSin[64].item<float>(), 5);
        // Second pair of the layer axis: theta^(-2/4) = 0.01.
        Assert.Equal(Math.Sin(4 * 0.01), tables.ImageSin[64, 1].item<float>(), 5);
    }

    [Fact]
    public void RotationPreservesNormsAndDotProductsDependOnlyOnPositionDifference()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        int[] axes = [4, 6, 6];
        var q = randn(1, 1, 1, 16);
        var k = randn(1, 1, 1, 16);

        float Dot(long m, long n)
        {
            // Only the row axis moves.
            var (cq, sq) = Layer3DRope.Angles(axes, tensor(new long[,] { { 0, m, 0 } }));
            var (ck, sk) = Layer3DRope.Angles(axes, tensor(new long[,] { { 0, n, 0 } }));
            var rq = Layer3DRope.Apply(q, cq, sq);
            var rk = Layer3DRope.Apply(k, ck, sk);
            Assert.Equal(q.norm().item<float>(), rq.norm().item<float>(), 4);
            return (rq * rk).sum().item<float>();
        }

        Assert.Equal(Dot(5, 2), Dot(13, 10), 4);
        Assert.Equal(Dot(-3, 0), Dot(1, 4), 4);
        Assert.NotEqual(Dot(5, 2), Dot(5, 3), 3);
    }

    [Fact]
    public void RotationPairsAdjacentChannels()
    {
        using var scope = NewDisposeScope();
        // A quarter turn on the first pair (layer axis, frequency 1) maps (1, 0) to (cos 1, sin 1).
        var x = zeros(1, 1, 1, 16);
        x[0, 0, 0, 0] = tensor(1f);
        var (c, s) = Layer3DRope.Angles([4, 6, 6], tensor(new long[,] { { 1, 0, 0 } }));
        var r = Layer3DRope.Apply(x, c, s);
        Assert.Equal(Math.Cos(1), r[0, 0, 0, 0].item<float>(), 5);
        Assert.Equal(Math.Sin(1), r[0, 0, 0, 1].item<float>(), 5);
        Assert.Equal(0f, r[0, 0, 0, 2].item<float>(), 6);
    }

    [Fact]
    public void TimestepProjectionIsCosThenSinWithScale1000()
    {
        using var scope = NewDisposeScope();
        var emb = TimestepEmbedding.Sinusoidal(tensor(new float[] { 0f, 0.5f }));
        Assert.Equal([2L, 256], emb.shape);
        Assert.Equal(1f, emb[0, 0].item<float>(), 6);
        Assert.Equal(0f, emb[0, 128].item<float>(), 6);
        // Frequency k = 0 is 1: cos(500), sin(500); k = 1 is exp(-ln(10000)/128) (downscale_freq_shift 0).
        Assert.Equal(Math.Cos(500), emb[1, 0].item<float>(), 3);
        Assert.Equal(Math.Sin(500), emb[1, 128].item<float>(), 3);
        double f1 = Math.Exp(-Math.Log(10000) / 128);
        Assert.Equal(Math.Sin(500 * f1), emb[1, 129].item<float>(), 3);
    }
}
