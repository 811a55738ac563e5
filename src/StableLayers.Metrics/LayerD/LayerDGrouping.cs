using StableLayers.Core.Imaging;

namespace StableLayers.Metrics.LayerD;

/// <summary>
/// LayerD's <c>group_top_layers_indices</c> (layerd/data/crello.py): repeatedly peel off, as one group, every
/// remaining layer whose alpha &gt; 0 mask overlaps no remaining layer above it (the topmost remaining layer always
/// qualifies); groups are returned back to front, indices ascending within a group. Each group is then flattened
/// with Pillow's alpha_composite in index order (LayersEditDist.__call__).
/// </summary>
public static class LayerDGrouping
{
    /// <summary>Group indices of a stack given bottom first (all layers the same size).</summary>
    public static IReadOnlyList<int[]> GroupTopLayers(IReadOnlyList<RgbaImage> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        var images = new LayerDImage[layers.Count];
        for (int i = 0; i < layers.Count; i++)
        {
            if (!layers[i].SameSize(layers[0]))
            {
                throw new ArgumentException($"layer {i} is {layers[i].Width}x{layers[i].Height}, layer 0 is {layers[0].Width}x{layers[0].Height}", nameof(layers));
            }

            images[i] = LayerDImage.From(i, layers[i]);
        }

        return Group(images);
    }

    /// <summary>The grouped stack: one layer per group, each the alpha_composite of its members (a single member is kept as is).</summary>
    public static IReadOnlyList<RgbaImage> GroupAndComposite(IReadOnlyList<RgbaImage> layers)
    {
        var groups = GroupTopLayers(layers);
        var result = new List<RgbaImage>(groups.Count);
        foreach (var group in groups)
        {
            var acc = layers[group[0]];
            for (int k = 1; k < group.Length; k++)
            {
                acc = PilAlphaComposite.Composite(acc, layers[group[k]]);
            }

            result.Add(acc);
        }

        return result;
    }

    internal static List<int[]> Group(IReadOnlyList<LayerDImage> layers)
    {
        int n = layers.Count;

        // overlap[i, j] (i < j): 0 unknown, 1 overlap, 2 disjoint. The mask pair test is the same in every round.
        var overlap = new byte[n, n];
        var groups = new List<int[]>();
        var remaining = Enumerable.Range(0, n).ToList();
        var current = new List<int>();
        while (remaining.Count > 0)
        {
            current.Clear();
            for (int a = 0; a < remaining.Count; a++)
            {
                int target = remaining[a];
                bool isTop = true;
                for (int b = a + 1; b < remaining.Count; b++)
                {
                    int compare = remaining[b];
                    if (overlap[target, compare] == 0)
                    {
                        overlap[target, compare] = Overlaps(layers[target], layers[compare]) ? (byte)1 : (byte)2;
                    }

                    if (overlap[target, compare] == 1)
                    {
                        isTop = false;
                        break;
                    }
                }

                if (isTop)
                {
                    current.Add(target);
                }
            }

            groups.Add([.. current]);
            remaining.RemoveAll(current.Contains);
        }

        groups.Reverse();
        return groups;
    }

    /// <summary>True when some pixel has alpha &gt; 0 in both layers.</summary>
    internal static bool Overlaps(LayerDImage a, LayerDImage b)
    {
        int x0 = Math.Max(a.X0, b.X0), x1 = Math.Min(a.X1, b.X1);
        int y0 = Math.Max(a.Y0, b.Y0), y1 = Math.Min(a.Y1, b.Y1);
        if (x1 <= x0 || y1 <= y0)
        {
            return false;
        }

        var pa = a.Pixels;
        var pb = b.Pixels;
        int width = a.Width;
        for (int y = y0; y < y1; y++)
        {
            int end = ((y * width) + x1) * 4;
            for (int i = (((y * width) + x0) * 4) + 3; i < end; i += 4)
            {
                if (pa[i] != 0 && pb[i] != 0)
                {
                    return true;
                }
            }
        }

        return false;
    }
}
