namespace StableLayers.Metrics;

/// <summary>
/// The fixed thresholds of docs/EVALUATION.md, as exact byte comparisons (strict: alpha &gt; 0.1 means byte &gt;= 26).
/// </summary>
public static class Thresholds
{
    /// <summary>alpha &gt; 0.1 (0.1*255 = 25.5).</summary>
    public const byte Covered = 26;

    /// <summary>alpha &gt; 0.9 (0.9*255 = 229.5).</summary>
    public const byte Opaque = 230;

    public const double BlankCoverage = 0.005;
    public const double DegenerateOpaqueFraction = 0.95;
    public const double WashCoverage = 0.5;
    public const double WashMeanAlpha = 0.5;
    public const double CopyCoverage = 0.8;
    public const double CopySsim = 0.9;
    public const double SpeckCanvasFraction = 0.0001;
    public const int SpeckMinPixels = 4;
    public const double ArtifactSpeckMass = 0.25;
}
