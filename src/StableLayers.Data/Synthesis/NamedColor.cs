using SkiaSharp;

namespace StableLayers.Data.Synthesis;

/// <summary>
/// A colour with the one word the caption uses for it. The palette is small on purpose: captions feed a tiny
/// text encoder, so every colour word must be frequent and always mean roughly the same colour.
/// </summary>
internal sealed record NamedColor(string Name, byte R, byte G, byte B)
{
    public static readonly IReadOnlyList<NamedColor> Palette =
    [
        new("red", 215, 40, 40),
        new("orange", 240, 135, 30),
        new("yellow", 245, 210, 45),
        new("green", 55, 165, 70),
        new("teal", 30, 155, 155),
        new("blue", 40, 90, 210),
        new("purple", 125, 60, 185),
        new("pink", 240, 125, 175),
        new("brown", 125, 80, 40),
        new("black", 25, 25, 25),
        new("white", 245, 245, 245),
        new("gray", 128, 128, 128),
    ];

    /// <summary>The colour with a small per-channel jitter, so "blue" is a family of blues rather than one value.</summary>
    public SKColor Sample(SampleRandom rng, byte alpha = 255)
    {
        const int jitter = 18;
        return new SKColor(Jitter(R), Jitter(G), Jitter(B), alpha);

        byte Jitter(byte c) => (byte)Math.Clamp(c + rng.Int(-jitter, jitter + 1), 0, 255);
    }

    /// <summary>"a red", "an orange": the colour word with its indefinite article.</summary>
    public string WithArticle => ("aeiou".Contains(Name[0], StringComparison.Ordinal) ? "an " : "a ") + Name;

    /// <summary>A palette colour whose name is none of <paramref name="avoid"/> (keeps foregrounds visible on the background).</summary>
    public static NamedColor PickOther(SampleRandom rng, params NamedColor[] avoid)
    {
        NamedColor c;
        do
        {
            c = rng.Pick(Palette);
        }
        while (Array.IndexOf(avoid, c) >= 0);
        return c;
    }
}
