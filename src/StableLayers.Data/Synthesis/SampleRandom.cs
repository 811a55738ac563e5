namespace StableLayers.Data.Synthesis;

/// <summary>
/// The random source of one sample. Its seed is a SplitMix64 hash of (dataset seed, sample index), so sample i
/// is the same however many samples are made and in whatever order threads reach it; System.Random(int) is
/// deterministic across runtimes and is never shared between samples.
/// </summary>
internal sealed class SampleRandom
{
    private readonly Random random;

    public SampleRandom(int seed, long index)
    {
        random = new Random(DeriveSeed(seed, index));
    }

    public static int DeriveSeed(int seed, long index)
    {
        ulong h = SplitMix64(((ulong)(uint)seed << 32) ^ 0x5EEDCAFEUL);
        h = SplitMix64(h ^ (ulong)index);
        return (int)(h ^ (h >> 32));
    }

    public float Range(float min, float max) => min + ((float)random.NextDouble() * (max - min));

    /// <summary>Integer in [min, maxExclusive).</summary>
    public int Int(int min, int maxExclusive) => random.Next(min, maxExclusive);

    public bool Chance(double p) => random.NextDouble() < p;

    public T Pick<T>(IReadOnlyList<T> items) => items[random.Next(items.Count)];

    /// <summary>Picks by relative weight.</summary>
    public T PickWeighted<T>(IReadOnlyList<(T Item, double Weight)> items)
    {
        double total = 0;
        foreach (var (_, w) in items)
        {
            total += w;
        }

        double r = random.NextDouble() * total;
        foreach (var (item, w) in items)
        {
            r -= w;
            if (r < 0)
            {
                return item;
            }
        }

        return items[^1].Item;
    }

    private static ulong SplitMix64(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }
}
