namespace StableLayers.Core.Formats.Psd;

/// <summary>PackBits run-length coding, the "RLE" compression (method 1) of PSD channel data, one image row at a time.</summary>
internal static class PackBits
{
    /// <summary>Decodes <paramref name="src"/> into exactly <paramref name="dst"/>.Length bytes; false when the data is short, long or malformed.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> src, Span<byte> dst)
    {
        int si = 0, di = 0;
        while (di < dst.Length)
        {
            if (si >= src.Length)
            {
                return false;
            }

            int n = (sbyte)src[si++];
            if (n >= 0)
            {
                int count = n + 1;
                if (si + count > src.Length || di + count > dst.Length)
                {
                    return false;
                }

                src.Slice(si, count).CopyTo(dst[di..]);
                si += count;
                di += count;
            }
            else if (n != -128)
            {
                // -128 is a no-op by the spec; other negatives repeat the next byte 1-n times.
                int count = 1 - n;
                if (si >= src.Length || di + count > dst.Length)
                {
                    return false;
                }

                dst.Slice(di, count).Fill(src[si++]);
                di += count;
            }
        }

        // Trailing padding bytes are tolerated (some writers pad rows to even lengths).
        return true;
    }

    /// <summary>Appends the PackBits encoding of <paramref name="row"/> to <paramref name="output"/>; returns the number of bytes written.</summary>
    public static int Encode(ReadOnlySpan<byte> row, List<byte> output)
    {
        int start = output.Count;
        int i = 0;
        while (i < row.Length)
        {
            // A run of at least 3 equal bytes is worth a repeat packet; shorter runs go into literals.
            int run = 1;
            while (i + run < row.Length && run < 128 && row[i + run] == row[i])
            {
                run++;
            }

            if (run >= 3 || (run == 2 && i + run == row.Length))
            {
                output.Add((byte)(1 - run));
                output.Add(row[i]);
                i += run;
                continue;
            }

            int litStart = i;
            while (i < row.Length && i - litStart < 128)
            {
                if (i + 2 < row.Length && row[i] == row[i + 1] && row[i] == row[i + 2])
                {
                    break;
                }

                i++;
            }

            output.Add((byte)(i - litStart - 1));
            for (int k = litStart; k < i; k++)
            {
                output.Add(row[k]);
            }
        }

        return output.Count - start;
    }
}
