namespace StableLayers.Model.Transformer;

/// <summary>
/// One frame of the packed image-token sequence: its RoPE layer index and its size in patch tokens
/// (latent height / 2, latent width / 2). Token layout contract shared with the packing code:
/// frames in order [output frame 0 (composite, layer 0), output frames 1..N (layers 1..N),
/// condition image (layer -1)], each frame row-major over its Height x Width patch grid.
/// </summary>
public sealed record FrameShape(int LayerIndex, int Height, int Width)
{
    /// <summary>The layer index diffusers gives the condition (input) image.</summary>
    public const int ConditionLayerIndex = -1;

    /// <summary>Number of tokens this frame contributes.</summary>
    public int TokenCount => Height * Width;

    /// <summary>
    /// The standard layered layout: output frames 0..<paramref name="layers"/> then the condition image,
    /// all of the same size (as the diffusers pipeline builds it).
    /// </summary>
    public static IReadOnlyList<FrameShape> Layered(int layers, int height, int width)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layers);
        var frames = new List<FrameShape>(layers + 2);
        for (int i = 0; i <= layers; i++)
        {
            frames.Add(new FrameShape(i, height, width));
        }

        frames.Add(new FrameShape(ConditionLayerIndex, height, width));
        return frames;
    }
}
