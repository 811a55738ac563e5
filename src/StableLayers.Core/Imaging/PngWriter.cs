using System.Buffers.Binary;
using System.IO.Compression;

namespace StableLayers.Core.Imaging;

public enum PngColorType : byte
{
    Grey = 0,
    Rgb = 2,
    Palette = 3,
    GreyAlpha = 4,
    Rgba = 6,
}

/// <summary>
/// A small, exact PNG encoder for any colour type and bit depth 8/16 (palette: 8). Our own so that the
/// bytes we write are exactly the bytes we hold (no colour management, no premultiplication), and so
/// tests can produce grey, palette and 16-bit files to check decoding against.
/// </summary>
public static class PngWriter
{
    private static readonly byte[] Signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <param name="samples">Rows of packed samples, big-endian for 16-bit, no filter bytes.</param>
    /// <param name="palette">RGB triples for <see cref="PngColorType.Palette"/>.</param>
    /// <param name="paletteAlpha">Optional tRNS alpha per palette entry.</param>
    public static byte[] Encode(int width, int height, PngColorType colorType, int bitDepth, ReadOnlySpan<byte> samples, byte[]? palette = null, byte[]? paletteAlpha = null, CompressionLevel level = CompressionLevel.Fastest)
    {
        int channels = colorType switch
        {
            PngColorType.Grey or PngColorType.Palette => 1,
            PngColorType.GreyAlpha => 2,
            PngColorType.Rgb => 3,
            PngColorType.Rgba => 4,
            _ => throw new ArgumentOutOfRangeException(nameof(colorType)),
        };
        if (bitDepth is not (8 or 16) || (colorType == PngColorType.Palette && bitDepth != 8))
        {
            throw new ArgumentOutOfRangeException(nameof(bitDepth), "only 8-bit (and 16-bit non-palette) PNGs are written");
        }

        int bpp = channels * bitDepth / 8;
        int stride = width * bpp;
        if (samples.Length != stride * height)
        {
            throw new ArgumentException($"expected {stride * height} sample bytes, got {samples.Length}", nameof(samples));
        }

        using var output = new MemoryStream();
        output.Write(Signature);

        Span<byte> ihdr = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr[4..], height);
        ihdr[8] = (byte)bitDepth;
        ihdr[9] = (byte)colorType;
        WriteChunk(output, "IHDR", ihdr);
        if (colorType == PngColorType.Palette)
        {
            WriteChunk(output, "PLTE", palette ?? throw new ArgumentNullException(nameof(palette)));
            if (paletteAlpha is not null)
            {
                WriteChunk(output, "tRNS", paletteAlpha);
            }
        }

        using (var idat = new MemoryStream())
        {
            using (var z = new ZLibStream(idat, level, leaveOpen: true))
            {
                var filtered = new byte[stride + 1];
                var candidate = new byte[stride];
                var prev = new byte[stride];
                for (int y = 0; y < height; y++)
                {
                    var row = samples.Slice(y * stride, stride);
                    ChooseFilter(row, prev, bpp, filtered, candidate);
                    z.Write(filtered);
                    row.CopyTo(prev);
                }
            }

            WriteChunk(output, "IDAT", idat.GetBuffer().AsSpan(0, (int)idat.Length));
        }

        WriteChunk(output, "IEND", []);
        return output.ToArray();
    }

    // Adaptive filtering (the libpng heuristic: smallest sum of absolute signed bytes) keeps files small.
    // One tight loop per filter type: a switch inside the per-byte loop made encoding the bottleneck of dataset writing.
    private static void ChooseFilter(ReadOnlySpan<byte> row, ReadOnlySpan<byte> prev, int bpp, byte[] best, byte[] candidate)
    {
        long bestScore = long.MaxValue;
        int n = row.Length;
        var cand = candidate.AsSpan(0, n);
        for (byte f = 0; f <= 4; f++)
        {
            switch (f)
            {
                case 0:
                    row.CopyTo(cand);
                    break;
                case 1:
                    row[..bpp].CopyTo(cand);
                    for (int i = bpp; i < n; i++)
                    {
                        cand[i] = (byte)(row[i] - row[i - bpp]);
                    }

                    break;
                case 2:
                    for (int i = 0; i < n; i++)
                    {
                        cand[i] = (byte)(row[i] - prev[i]);
                    }

                    break;
                case 3:
                    for (int i = 0; i < bpp; i++)
                    {
                        cand[i] = (byte)(row[i] - (prev[i] >> 1));
                    }

                    for (int i = bpp; i < n; i++)
                    {
                        cand[i] = (byte)(row[i] - ((row[i - bpp] + prev[i]) >> 1));
                    }

                    break;
                default:
                    for (int i = 0; i < bpp; i++)
                    {
                        cand[i] = (byte)(row[i] - prev[i]);
                    }

                    for (int i = bpp; i < n; i++)
                    {
                        cand[i] = (byte)(row[i] - Paeth(row[i - bpp], prev[i], prev[i - bpp]));
                    }

                    break;
            }

            long score = 0;
            foreach (byte v in cand)
            {
                score += (sbyte)v < 0 ? -(sbyte)v : v;
            }

            if (score < bestScore)
            {
                bestScore = score;
                best[0] = f;
                cand.CopyTo(best.AsSpan(1));
            }
        }
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static void WriteChunk(Stream s, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> header = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(header, data.Length);
        for (int i = 0; i < 4; i++)
        {
            header[4 + i] = (byte)type[i];
        }

        s.Write(header);
        s.Write(data);
        uint crc = Crc32.Update(Crc32.Update(0xFFFFFFFFu, header[4..]), data) ^ 0xFFFFFFFFu;
        Span<byte> crcBytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crcBytes, crc);
        s.Write(crcBytes);
    }
}

/// <summary>The CRC-32 of PNG and ZIP (polynomial 0xEDB88320).</summary>
public static class Crc32
{
    private static readonly uint[] Table = BuildTable();

    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (byte b in data)
        {
            crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return crc;
    }

    private static uint[] BuildTable()
    {
        var t = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }

            t[n] = c;
        }

        return t;
    }
}
