using SkiaSharp;

namespace StableLayers.Data.Synthesis;

/// <summary>
/// The typefaces text layers use, resolved once through fontconfig (SkiaSharp.NativeAssets.Linux). Families that
/// are not installed fall back to whatever fontconfig substitutes, and finally to Skia's default typeface; a
/// machine with different fonts therefore draws different (still valid) glyphs for the same sample.
/// </summary>
internal static class SynthFonts
{
    private static readonly (string Family, SKFontStyleWeight Weight)[] Wanted =
    [
        ("DejaVu Sans", SKFontStyleWeight.Bold),
        ("DejaVu Sans", SKFontStyleWeight.Normal),
        ("DejaVu Serif", SKFontStyleWeight.Bold),
        ("DejaVu Serif", SKFontStyleWeight.Normal),
        ("DejaVu Sans Mono", SKFontStyleWeight.Bold),
        ("Liberation Sans", SKFontStyleWeight.Bold),
    ];

    private static readonly Lazy<IReadOnlyList<SKTypeface>> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    public static IReadOnlyList<SKTypeface> Typefaces => Loaded.Value;

    private static List<SKTypeface> Load()
    {
        var list = new List<SKTypeface>();
        foreach (var (family, weight) in Wanted)
        {
            var tf = SKTypeface.FromFamilyName(family, weight, SKFontStyleWidth.Normal, SKFontStyleSlant.Upright);
            if (tf is not null && tf.GlyphCount > 0)
            {
                list.Add(tf);
            }
        }

        if (list.Count == 0)
        {
            list.Add(SKTypeface.Default);
        }

        return list;
    }
}
