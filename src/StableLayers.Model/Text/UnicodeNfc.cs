using System.Globalization;
using System.Text;

namespace StableLayers.Model.Text;

/// <summary>
/// Unicode Normalization Form C (UAX #15: canonical decomposition, canonical ordering, canonical composition). The
/// projects run with InvariantGlobalization, where <see cref="string.Normalize()"/> does not normalise non-ASCII
/// text, so the tokenizer carries its own tables (<see cref="UnicodeNfcData"/>).
/// </summary>
public static class UnicodeNfc
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Dictionary<int, int> Ccc = ParsePairs(UnicodeNfcData.CombiningClasses)
        .ToDictionary(p => (int)p.Key, p => int.Parse(p.Value, CultureInfo.InvariantCulture));

    private static readonly Dictionary<int, int[]> Decomp = ParsePairs(UnicodeNfcData.Decompositions)
        .ToDictionary(p => (int)p.Key, p => p.Value.Split(',').Select(Hex).ToArray());

    private static readonly Dictionary<(int, int), int> Comp = ParsePairs(UnicodeNfcData.Compositions, keyIsPair: true)
        .ToDictionary(p => ((int)(p.Key >> 21), (int)(p.Key & 0x1FFFFF)), p => Hex(p.Value));

    /// <summary>The Unicode version of the tables.</summary>
    public static string UnicodeVersion => UnicodeNfcData.UnicodeVersion;

    public static string Normalize(string s)
    {
        ArgumentNullException.ThrowIfNull(s);

        // Below U+0300 every character is its own NFC form and none combines with what precedes it.
        bool quick = true;
        foreach (char ch in s)
        {
            if (ch >= 0x300)
            {
                quick = false;
                break;
            }
        }

        if (quick)
        {
            return s;
        }

        var cps = new List<int>(s.Length);
        foreach (var r in s.EnumerateRunes())
        {
            Decompose(r.Value, cps);
        }

        Reorder(cps);
        Compose(cps);
        var sb = new StringBuilder(s.Length);
        foreach (int cp in cps)
        {
            sb.Append(char.ConvertFromUtf32(cp));
        }

        return sb.ToString();
    }

    private static int CombiningClass(int cp) => Ccc.TryGetValue(cp, out int c) ? c : 0;

    private static void Decompose(int cp, List<int> output)
    {
        int sIndex = cp - SBase;
        if (sIndex is >= 0 and < SCount)
        {
            output.Add(LBase + (sIndex / NCount));
            output.Add(VBase + (sIndex % NCount / TCount));
            if (sIndex % TCount != 0)
            {
                output.Add(TBase + (sIndex % TCount));
            }

            return;
        }

        if (Decomp.TryGetValue(cp, out var d))
        {
            output.AddRange(d);
        }
        else
        {
            output.Add(cp);
        }
    }

    /// <summary>Stable sort of each run of non-starters by combining class.</summary>
    private static void Reorder(List<int> cps)
    {
        for (int i = 1; i < cps.Count; i++)
        {
            int c = CombiningClass(cps[i]);
            if (c == 0)
            {
                continue;
            }

            int j = i;
            int cp = cps[i];
            while (j > 0 && CombiningClass(cps[j - 1]) > c)
            {
                cps[j] = cps[j - 1];
                j--;
            }

            cps[j] = cp;
        }
    }

    private static void Compose(List<int> cps)
    {
        if (cps.Count == 0)
        {
            return;
        }

        int starterAt = CombiningClass(cps[0]) == 0 ? 0 : -1;
        int lastClass = starterAt == 0 ? 0 : 256;
        int write = 1;
        for (int read = 1; read < cps.Count; read++)
        {
            int cp = cps[read];
            int cls = CombiningClass(cp);

            // A character combines with the last starter unless a character of the same or higher class (or a
            // starter) sits between them.
            bool blocked = starterAt < 0 || (write - 1 != starterAt && (lastClass == 0 || lastClass >= cls));
            if (!blocked && TryCompose(cps[starterAt], cp, out int composite))
            {
                cps[starterAt] = composite;
                continue;
            }

            if (cls == 0)
            {
                starterAt = write;
            }

            lastClass = cls;
            cps[write++] = cp;
        }

        cps.RemoveRange(write, cps.Count - write);
    }

    private static bool TryCompose(int first, int second, out int composite)
    {
        int lIndex = first - LBase;
        if (lIndex is >= 0 and < LCount)
        {
            int vIndex = second - VBase;
            if (vIndex is >= 0 and < VCount)
            {
                composite = SBase + (((lIndex * VCount) + vIndex) * TCount);
                return true;
            }
        }

        int sIndex = first - SBase;
        if (sIndex is >= 0 and < SCount && sIndex % TCount == 0)
        {
            int tIndex = second - TBase;
            if (tIndex is > 0 and < TCount)
            {
                composite = first + tIndex;
                return true;
            }
        }

        return Comp.TryGetValue((first, second), out composite);
    }

    private static int Hex(string s) => int.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private static IEnumerable<KeyValuePair<long, string>> ParsePairs(string data, bool keyIsPair = false)
    {
        foreach (var item in data.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int colon = item.IndexOf(':', StringComparison.Ordinal);
            string key = item[..colon];
            long k = keyIsPair
                ? ((long)Hex(key[..key.IndexOf(',', StringComparison.Ordinal)]) << 21) | (long)Hex(key[(key.IndexOf(',', StringComparison.Ordinal) + 1)..])
                : Hex(key);
            yield return new KeyValuePair<long, string>(k, item[(colon + 1)..]);
        }
    }
}
