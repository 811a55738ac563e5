using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;

namespace StableLayers.Core.Formats.Psd;

/// <summary>
/// Writes a layered 8-bit RGB PSD (version 1): one normal, fully opaque-setting raster layer per stack layer,
/// cropped to its content with offsets, RLE compressed, named (Pascal and 'luni' Unicode), plus the merged
/// image flattened on white for viewers that ignore layers.
/// </summary>
public static class PsdWriter
{
    /// <summary>PSD (not PSB) limits canvases to 30000 px a side.</summary>
    public const int MaxSide = 30000;

    public static void Write(string path, LayerStack stack) => AtomicFile.WriteAllBytes(path, Encode(stack));

    public static byte[] Encode(LayerStack stack)
    {
        ArgumentNullException.ThrowIfNull(stack);
        if (stack.Width > MaxSide || stack.Height > MaxSide)
        {
            throw new ArgumentException($"PSD canvases are at most {MaxSide} px a side; this one is {stack.Width}x{stack.Height}", nameof(stack));
        }

        if (stack.Count > short.MaxValue)
        {
            throw new ArgumentException($"too many layers for PSD ({stack.Count})", nameof(stack));
        }

        var o = new Out();
        o.Ascii("8BPS");
        o.U16(1);
        o.Zeros(6);
        o.U16(3); // merged image channels: RGB, flattened so no alpha is needed
        o.U32((uint)stack.Height);
        o.U32((uint)stack.Width);
        o.U16(8);
        o.U16((ushort)PsdColorMode.Rgb);
        o.U32(0); // colour mode data
        o.U32(0); // image resources

        var layerInfo = LayerInfo(stack);
        o.U32((uint)(4 + layerInfo.Length + 4));
        o.U32((uint)layerInfo.Length);
        o.Bytes(layerInfo);
        o.U32(0); // global layer mask info

        // Merged image: RLE with all row lengths first, then the rows, channel by channel.
        var merged = stack.FlattenOnWhite();
        var rows = new List<byte>();
        var lengths = new List<int>();
        var plane = new byte[stack.Width];
        for (int ch = 0; ch < 3; ch++)
        {
            for (int y = 0; y < stack.Height; y++)
            {
                for (int x = 0, i = (y * stack.Width * 4) + ch; x < stack.Width; x++, i += 4)
                {
                    plane[x] = merged.Pixels[i];
                }

                lengths.Add(PackBits.Encode(plane, rows));
            }
        }

        o.U16(1);
        foreach (int len in lengths)
        {
            o.U16((ushort)len);
        }

        o.Bytes(rows.ToArray());
        return o.ToArray();
    }

    /// <summary>The layer info block (count, records, channel data), padded to a multiple of 4 bytes.</summary>
    private static byte[] LayerInfo(LayerStack stack)
    {
        var records = new Out();
        var data = new Out();
        records.I16((short)stack.Count);
        foreach (var layer in stack.Layers)
        {
            var rect = LayerCrop.ContentBounds(layer.Image);
            var channels = EncodeChannels(layer.Image, rect);
            records.I32(rect.Y);
            records.I32(rect.X);
            records.I32(rect.Y + rect.Height);
            records.I32(rect.X + rect.Width);
            records.U16(4);
            short[] ids = [-1, 0, 1, 2];
            for (int i = 0; i < 4; i++)
            {
                records.I16(ids[i]);
                records.U32((uint)channels[i].Length);
            }

            records.Ascii("8BIMnorm");
            records.U8(255); // opacity: already baked into alpha
            records.U8(0); // clipping: base
            records.U8(0x08); // flags: visible; bit 3 marks a Photoshop 5+ writer
            records.U8(0);
            var extra = ExtraData(layer.Name);
            records.U32((uint)extra.Length);
            records.Bytes(extra);
            foreach (var ch in channels)
            {
                data.Bytes(ch);
            }
        }

        var all = new Out();
        all.Bytes(records.ToArray());
        all.Bytes(data.ToArray());
        all.Zeros((4 - (all.Length % 4)) % 4);
        return all.ToArray();
    }

    /// <summary>Alpha, R, G, B channel data (compression word included) for the cropped layer.</summary>
    private static byte[][] EncodeChannels(RgbaImage image, PixelRect rect)
    {
        int[] offsets = [3, 0, 1, 2];
        var result = new byte[4][];
        for (int c = 0; c < 4; c++)
        {
            var ch = new Out();
            if (rect.IsEmpty)
            {
                ch.U16(0); // raw, zero bytes: an empty layer
                result[c] = ch.ToArray();
                continue;
            }

            var rows = new List<byte>();
            var plane = new byte[rect.Width];
            ch.U16(1);
            for (int y = 0; y < rect.Height; y++)
            {
                for (int x = 0, i = ((((rect.Y + y) * image.Width) + rect.X) * 4) + offsets[c]; x < rect.Width; x++, i += 4)
                {
                    plane[x] = image.Pixels[i];
                }

                ch.U16((ushort)PackBits.Encode(plane, rows));
            }

            ch.Bytes(rows.ToArray());
            result[c] = ch.ToArray();
        }

        return result;
    }

    private static byte[] ExtraData(string name)
    {
        var e = new Out();
        e.U32(0); // no layer mask
        e.U32(0); // no blending ranges

        // Pascal name (ASCII only; '?' for the rest), padded so length byte + text is a multiple of 4.
        var ascii = name.Select(ch => ch is >= ' ' and < (char)127 ? (byte)ch : (byte)'?').Take(255).ToArray();
        e.U8((byte)ascii.Length);
        e.Bytes(ascii);
        e.Zeros((4 - ((ascii.Length + 1) % 4)) % 4);

        // 'luni': the full Unicode name, which readers prefer.
        var utf16 = Encoding.BigEndianUnicode.GetBytes(name);
        int len = 4 + utf16.Length;
        int padded = (len + 3) / 4 * 4;
        e.Ascii("8BIMluni");
        e.U32((uint)padded);
        e.U32((uint)(utf16.Length / 2));
        e.Bytes(utf16);
        e.Zeros(padded - len);
        return e.ToArray();
    }

    /// <summary>A growable big-endian byte sink.</summary>
    private sealed class Out
    {
        private readonly ArrayBufferWriter<byte> buf = new();

        public int Length => buf.WrittenCount;

        public void U8(byte v) => buf.Write([v]);

        public void U16(ushort v) => BinaryPrimitives.WriteUInt16BigEndian(Take(2), v);

        public void I16(short v) => U16((ushort)v);

        public void U32(uint v) => BinaryPrimitives.WriteUInt32BigEndian(Take(4), v);

        public void I32(int v) => U32((uint)v);

        public void Ascii(string s) => buf.Write(Encoding.ASCII.GetBytes(s));

        public void Bytes(ReadOnlySpan<byte> b) => buf.Write(b);

        public void Zeros(int n)
        {
            buf.GetSpan(n)[..n].Clear();
            buf.Advance(n);
        }

        public byte[] ToArray() => buf.WrittenSpan.ToArray();

        private Span<byte> Take(int n)
        {
            var span = buf.GetSpan(n)[..n];
            buf.Advance(n);
            return span;
        }
    }
}
