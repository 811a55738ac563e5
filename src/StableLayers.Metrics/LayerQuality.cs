namespace StableLayers.Metrics;

/// <summary>Per-layer defect flags of one decomposition (docs/EVALUATION.md metrics 3 and 4).</summary>
public sealed record LayerQualityReport(
    int Blank,
    int Glazed,
    int Artifact,
    bool DegenerateBackground,
    IReadOnlyList<LayerDefect> Layers)
{
    /// <summary>Bad layers per decomposition: blank + glazed + artifact (not already glazed) + degenerate layer 0.</summary>
    public int BadLayers => Blank + Glazed + Artifact + (DegenerateBackground ? 1 : 0);
}

/// <summary>What is wrong with one layer, if anything. <see cref="Copy"/> is only tested when two or more layers cover over 80% of the canvas.</summary>
public sealed record LayerDefect(int Index, double Coverage, bool Blank, bool Wash, bool Copy, bool Glazed, bool Artifact);

/// <summary>Blank, glazed (wash or duplicate of the input), artifact (speckle) and degenerate-background tests.</summary>
public static class LayerQuality
{
    /// <param name="layers">The predicted layers, bottom first.</param>
    /// <param name="inputOnWhite">The input image (RGB plane) for the duplicate test; null skips that test.</param>
    public static LayerQualityReport Assess(IReadOnlyList<LayerPlanes> layers, float[]? inputOnWhite)
    {
        ArgumentNullException.ThrowIfNull(layers);
        int n = layers.Count;
        var coverage = new double[n];
        var copy = new bool[n];
        var wash = new bool[n];
        for (int k = 0; k < n; k++)
        {
            var l = layers[k];
            int covered = 0;
            double alphaCovered = 0;
            for (int i = 0; i < l.PixelCount; i++)
            {
                if (l.AlphaBytes[i] >= Thresholds.Covered)
                {
                    covered++;
                    alphaCovered += l.Alpha[i];
                }
            }

            coverage[k] = covered / (double)l.PixelCount;
            wash[k] = k > 0 && coverage[k] > Thresholds.WashCoverage && alphaCovered / covered < Thresholds.WashMeanAlpha;
        }

        // A copy only makes a layer glazed when another copy lies below it, so with fewer than two
        // candidates (coverage > 80%) the SSIM test cannot change the outcome and is skipped.
        if (inputOnWhite is not null && coverage.Count(c => c > Thresholds.CopyCoverage) >= 2)
        {
            for (int k = 0; k < n; k++)
            {
                if (coverage[k] > Thresholds.CopyCoverage)
                {
                    var l = layers[k];
                    copy[k] = Ssim.Compute(l.OnWhite, inputOnWhite, l.Width, l.Height) > Thresholds.CopySsim;
                }
            }
        }

        int lowestCopy = Array.IndexOf(copy, true);
        var defects = new List<LayerDefect>(n);
        int blank = 0, glazed = 0, artifact = 0;
        for (int k = 0; k < n; k++)
        {
            bool isBlank = k > 0 && coverage[k] < Thresholds.BlankCoverage;
            bool isGlazed = k > 0 && (wash[k] || (copy[k] && k > lowestCopy));
            bool isArtifact = k > 0 && !isBlank && !isGlazed && IsSpeckle(layers[k]);
            blank += isBlank ? 1 : 0;
            glazed += isGlazed ? 1 : 0;
            artifact += isArtifact ? 1 : 0;
            defects.Add(new LayerDefect(k, coverage[k], isBlank, wash[k], copy[k], isGlazed, isArtifact));
        }

        return new LayerQualityReport(blank, glazed, artifact, n > 0 && IsDegenerateBackground(layers[0]), defects);
    }

    /// <summary>Layer 0 is degenerate when less than 95% of it is opaque (alpha &gt; 0.9).</summary>
    public static bool IsDegenerateBackground(LayerPlanes layer0)
    {
        ArgumentNullException.ThrowIfNull(layer0);
        int opaque = 0;
        foreach (byte a in layer0.AlphaBytes)
        {
            if (a >= Thresholds.Opaque)
            {
                opaque++;
            }
        }

        return opaque < Thresholds.DegenerateOpaqueFraction * layer0.PixelCount;
    }

    /// <summary>
    /// True when specks (8-connected components of alpha &gt; 0.1 smaller than max(4 px, 0.01% of the canvas))
    /// hold more than 25% of the layer's alpha mass.
    /// </summary>
    public static bool IsSpeckle(LayerPlanes layer) => SpeckShare(layer) > Thresholds.ArtifactSpeckMass;

    /// <summary>Share of the layer's alpha mass in specks (components smaller than max(4 px, 0.01% of the canvas)); 0 for an empty layer.</summary>
    public static double SpeckShare(LayerPlanes layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        double mass = 0;
        foreach (float a in layer.Alpha)
        {
            mass += a;
        }

        if (mass <= 0)
        {
            return 0;
        }

        double speckLimit = Math.Max(Thresholds.SpeckMinPixels, Thresholds.SpeckCanvasFraction * layer.PixelCount);
        double speckMass = 0;
        foreach (var (size, componentMass) in ConnectedComponents.Covered(layer))
        {
            if (size < speckLimit)
            {
                speckMass += componentMass;
            }
        }

        return Math.Min(1, speckMass / mass);
    }
}

/// <summary>8-connected components of a layer's covered pixels (alpha &gt; 0.1).</summary>
public static class ConnectedComponents
{
    /// <summary>Each component's pixel count and alpha mass.</summary>
    public static List<(int Size, double Mass)> Covered(LayerPlanes layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        int w = layer.Width, h = layer.Height;
        var seen = new bool[w * h];
        var stack = new Stack<int>();
        var result = new List<(int, double)>();
        for (int start = 0; start < seen.Length; start++)
        {
            if (seen[start] || layer.AlphaBytes[start] < Thresholds.Covered)
            {
                continue;
            }

            int size = 0;
            double mass = 0;
            seen[start] = true;
            stack.Push(start);
            while (stack.Count > 0)
            {
                int p = stack.Pop();
                size++;
                mass += layer.Alpha[p];
                int py = p / w, px = p - (py * w);
                for (int dy = -1; dy <= 1; dy++)
                {
                    int y = py + dy;
                    if ((uint)y >= (uint)h)
                    {
                        continue;
                    }

                    for (int dx = -1; dx <= 1; dx++)
                    {
                        int x = px + dx;
                        if ((uint)x >= (uint)w)
                        {
                            continue;
                        }

                        int q = (y * w) + x;
                        if (!seen[q] && layer.AlphaBytes[q] >= Thresholds.Covered)
                        {
                            seen[q] = true;
                            stack.Push(q);
                        }
                    }
                }
            }

            result.Add((size, mass));
        }

        return result;
    }
}
