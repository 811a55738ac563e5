using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Transformer;

/// <summary>Rotation tables for one forward: cos/sin of every token's angles, [S, head_dim/2] float32.</summary>
public sealed record RopeTables(Tensor ImageCos, Tensor ImageSin, Tensor TextCos, Tensor TextSin);

/// <summary>
/// Layer-aware 3D rotary position embedding of Qwen-Image-Layered (diffusers <c>QwenEmbedLayer3DRope</c>
/// with <c>scale_rope=True</c>). Each token has integer positions on three axes (layer, row, column);
/// each axis owns a slice of the head dim and rotates adjacent channel pairs (2k, 2k+1) by
/// position x theta^(-2k/axis_dim).
/// </summary>
public static class Layer3DRope
{
    public const double Theta = 10000.0;

    /// <summary>
    /// Positions [S_img, 3] (layer, row, column) of the image tokens in the packed order.
    /// Rows run -(H - H/2) .. H/2 - 1 (integer halves: centred for even H, one more negative row for odd H),
    /// columns likewise; the layer axis is the frame's <see cref="FrameShape.LayerIndex"/> (-1 for the condition image).
    /// </summary>
    public static long[,] ImagePositions(IReadOnlyList<FrameShape> frames)
    {
        ArgumentNullException.ThrowIfNull(frames);
        var positions = new long[frames.Sum(f => f.TokenCount), 3];
        int t = 0;
        foreach (var f in frames)
        {
            for (int r = 0; r < f.Height; r++)
            {
                for (int c = 0; c < f.Width; c++, t++)
                {
                    positions[t, 0] = f.LayerIndex;
                    positions[t, 1] = r - (f.Height - f.Height / 2);
                    positions[t, 2] = c - (f.Width - f.Width / 2);
                }
            }
        }

        return positions;
    }

    /// <summary>
    /// First text position: text token k sits at TextOffset + k on all three axes, past every image position:
    /// max over frames of (H/2, W/2) and the number of output frames (diffusers' <c>layer_num</c>, which
    /// counts every frame but the condition image).
    /// </summary>
    public static int TextOffset(IReadOnlyList<FrameShape> frames)
    {
        ArgumentNullException.ThrowIfNull(frames);
        int offset = frames.Count(f => f.LayerIndex != FrameShape.ConditionLayerIndex);
        foreach (var f in frames)
        {
            offset = Math.Max(offset, Math.Max(f.Height / 2, f.Width / 2));
        }

        return offset;
    }

    /// <summary>Builds the cos/sin tables for a layout and a (padded) text length.</summary>
    public static RopeTables Tables(IReadOnlyList<int> axesDims, IReadOnlyList<FrameShape> frames, int textLength, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(axesDims);
        var img = ImagePositions(frames);
        int offset = TextOffset(frames);
        var txt = new long[textLength, 3];
        for (int k = 0; k < textLength; k++)
        {
            txt[k, 0] = txt[k, 1] = txt[k, 2] = offset + k;
        }

        using var scope = NewDisposeScope();
        var (ic, isn) = Angles(axesDims, tensor(img, device: device));
        var (tc, ts) = Angles(axesDims, tensor(txt, device: device));
        return new RopeTables(ic.MoveToOuterDisposeScope(), isn.MoveToOuterDisposeScope(), tc.MoveToOuterDisposeScope(), ts.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// cos and sin of the angles for positions [S, 3] -> [S, sum(axes)/2] each. Angles are formed in float32
    /// (position x inverse frequency), as diffusers does, so that large text positions round the same way.
    /// </summary>
    public static (Tensor Cos, Tensor Sin) Angles(IReadOnlyList<int> axesDims, Tensor positions)
    {
        ArgumentNullException.ThrowIfNull(axesDims);
        ArgumentNullException.ThrowIfNull(positions);
        using var scope = NewDisposeScope();
        var parts = new List<Tensor>(3);
        for (int a = 0; a < 3; a++)
        {
            int dim = axesDims[a];
            var exponents = arange(0, dim, 2, dtype: ScalarType.Float32, device: positions.device) / dim;
            // theta^(-e) as 1 / theta^e in float32, with both constants as tensors on the positions' device.
            var inverse = full_like(exponents, 1.0f).div(pow(full_like(exponents, Theta), exponents));
            parts.Add(positions.select(1, a).to(ScalarType.Float32).unsqueeze(1) * inverse.unsqueeze(0));
        }

        var angles = cat(parts, 1);
        return (cos(angles).MoveToOuterDisposeScope(), sin(angles).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Rotates x [B, S, H, D] by the tables [S, D/2]: each channel pair (x0, x1) becomes
    /// (x0 cos - x1 sin, x0 sin + x1 cos). Done in float32 and cast back, like diffusers' complex path.
    /// </summary>
    public static Tensor Apply(Tensor x, Tensor cosTable, Tensor sinTable)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(cosTable);
        ArgumentNullException.ThrowIfNull(sinTable);
        using var scope = NewDisposeScope();
        // TorchSharp's unflatten rejects negative dims, hence the explicit last-dim index.
        var pairs = x.to(ScalarType.Float32).unflatten(x.dim() - 1, [x.shape[^1] / 2, 2]);
        var x0 = pairs.select(-1, 0);
        var x1 = pairs.select(-1, 1);
        var c = cosTable.unsqueeze(1);
        var s = sinTable.unsqueeze(1);
        var rotated = stack([x0 * c - x1 * s, x0 * s + x1 * c], -1).flatten(-2);
        return rotated.to(x.dtype).MoveToOuterDisposeScope();
    }
}
