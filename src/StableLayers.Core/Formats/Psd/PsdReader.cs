using System.IO.Compression;
using System.Text;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;

namespace StableLayers.Core.Formats.Psd;

/// <summary>
/// Reads 8-bit RGB and grayscale Photoshop files (PSD version 1): layer records, groups, opacity, visibility and
/// raw/RLE/ZIP channel data, plus the merged image. Anything malformed becomes a <see cref="BadInputException"/>
/// naming the file; features we do not render (blend modes, effects, adjustment layers) are listed in
/// <see cref="PsdDocument.Warnings"/> and the stored pixels are used as they are.
/// </summary>
public static class PsdReader
{
    private const int MaxChannels = 56;

    public static PsdDocument Read(string path)
    {
        return Read(InputFile.ReadAllBytes(path), path);
    }

    /// <summary>Parses PSD bytes; <paramref name="name"/> is used in error messages.</summary>
    public static PsdDocument Read(byte[] data, string name)
    {
        ArgumentNullException.ThrowIfNull(data);
        return new Parser(new PsdCursor(data, name)).Parse();
    }

    /// <summary>Convenience: the visible layers as a <see cref="LayerStack"/> (see <see cref="PsdDocument.ToLayerStack"/>).</summary>
    public static LayerStack ReadStack(string path, bool addWhiteBackground = false) => Read(path).ToLayerStack(addWhiteBackground);

    private sealed record ChannelInfo(short Id, long Length);

    /// <summary>A layer record as stored, before group structure is resolved.</summary>
    private sealed class RawLayer
    {
        public string Name = string.Empty;
        public int Top, Left, Bottom, Right;
        public ChannelInfo[] Channels = [];
        public string BlendMode = "norm";
        public byte Opacity = 255, Fill = 255, Clipping, Flags;
        public int SectionType; // 0 = pixel layer, 1/2 = group (open/closed), 3 = end-of-group divider
        public RgbaImage? Pixels;
        public MaskInfo? Mask;
        public List<string> Notes = [];

        public int Width => Right - Left;

        public int Height => Bottom - Top;

        public bool HiddenSelf => (Flags & 0x02) != 0;
    }

    private sealed record MaskInfo(int Top, int Left, int Bottom, int Right, byte DefaultColor, bool Disabled);

    private sealed class Parser
    {
        private static readonly HashSet<string> AdjustmentKeys =
        [
            "SoCo", "GdFl", "PtFl", "brit", "levl", "curv", "expA", "vibA", "hue ", "hue2", "blnc", "blwh", "phfl",
            "mixr", "clrL", "nvrt", "post", "thrs", "grdm", "selc",
        ];

        private readonly PsdCursor c;
        private readonly List<string> warnings = [];
        private int width, height, channelCount;
        private PsdColorMode mode;

        public Parser(PsdCursor cursor) => c = cursor;

        public PsdDocument Parse()
        {
            ReadHeader();
            c.Skip(c.SectionLength("color mode data"), "color mode data");
            c.Skip(c.SectionLength("image resources"), "image resources");
            var raw = ReadLayerAndMaskInfo();
            var merged = ReadMergedImage();
            var layers = ResolveGroups(raw);
            return new PsdDocument(width, height, mode, layers, merged, warnings);
        }

        private void ReadHeader()
        {
            if (c.Remaining < 26)
            {
                throw c.Bad(c.Remaining == 0 ? "empty file" : "not a PSD file (shorter than the 26-byte header)");
            }

            string sig = c.Ascii(4, "signature");
            if (sig != "8BPS")
            {
                throw c.Bad("not a PSD file (signature is not '8BPS')");
            }

            ushort version = c.U16("version");
            if (version == 2)
            {
                throw c.Bad("PSB (large document format) files are not supported; save as PSD");
            }

            if (version != 1)
            {
                throw c.Bad($"unsupported PSD version {version}");
            }

            c.Skip(6, "reserved header bytes");
            channelCount = c.U16("channel count");
            uint h = c.U32("height"), w = c.U32("width");
            ushort depth = c.U16("depth");
            ushort colorMode = c.U16("color mode");
            if (channelCount is < 1 or > MaxChannels)
            {
                throw c.Bad($"invalid channel count {channelCount}");
            }

            // Check the size before anything is allocated: a forged header must not cost memory.
            ImageLimits.Check(c.Path, w, h);
            width = (int)w;
            height = (int)h;
            if (depth != 8)
            {
                throw c.Bad($"{depth}-bit PSD is not supported (only 8 bits per channel)");
            }

            mode = (PsdColorMode)colorMode;
            if (mode is not (PsdColorMode.Rgb or PsdColorMode.Grayscale))
            {
                string what = Enum.IsDefined(mode) ? mode.ToString() : $"unknown ({colorMode})";
                throw c.Bad($"colour mode {what} is not supported (only RGB and grayscale)");
            }

            if (mode == PsdColorMode.Rgb && channelCount < 3)
            {
                throw c.Bad($"RGB file with only {channelCount} channels");
            }
        }

        private List<RawLayer> ReadLayerAndMaskInfo()
        {
            long length = c.SectionLength("layer and mask information");
            long sectionEnd = c.Position + length;
            var layers = new List<RawLayer>();
            if (length == 0)
            {
                return layers;
            }

            long outer = c.PushLimit(length, "layer and mask information");
            long infoLength = c.SectionLength("layer info");
            long infoEnd = c.Position + infoLength;
            if (infoLength > 0)
            {
                long old = c.PushLimit(infoLength, "layer info");
                layers = ReadLayerInfo();
                c.PopLimit(old);
            }

            c.SeekTo(infoEnd, "layer info");
            if (c.Remaining >= 4)
            {
                c.Skip(c.SectionLength("global layer mask info"), "global layer mask info");
            }

            // Tagged blocks after the global mask; a 'Layr' block holds the layer info when the main one is empty.
            while (c.Remaining >= 12)
            {
                string sig = c.Ascii(4, "tagged block signature");
                if (sig is not ("8BIM" or "8B64"))
                {
                    break;
                }

                string key = c.Ascii(4, "tagged block key");
                long len = c.SectionLength($"tagged block '{key}'");
                long end = c.Position + len;
                if (key == "Layr" && layers.Count == 0 && len > 0)
                {
                    long old = c.PushLimit(len, "Layr block");
                    layers = ReadLayerInfo();
                    c.PopLimit(old);
                }

                c.SeekTo(end, $"tagged block '{key}'");
                c.Skip(Math.Min(c.Remaining, (4 - (len % 4)) % 4), "padding");
            }

            c.PopLimit(outer);
            c.SeekTo(sectionEnd, "layer and mask information");
            return layers;
        }

        private List<RawLayer> ReadLayerInfo()
        {
            int count = Math.Abs((int)c.I16("layer count"));
            var layers = new List<RawLayer>(count);
            for (int i = 0; i < count; i++)
            {
                layers.Add(ReadLayerRecord(i));
            }

            foreach (var layer in layers)
            {
                ReadChannelData(layer);
            }

            return layers;
        }

        private RawLayer ReadLayerRecord(int index)
        {
            string where = $"layer record {index}";
            var l = new RawLayer
            {
                Top = c.I32(where),
                Left = c.I32(where),
                Bottom = c.I32(where),
                Right = c.I32(where),
            };
            if ((long)l.Bottom - l.Top < 0 || (long)l.Right - l.Left < 0 || (long)l.Bottom - l.Top > int.MaxValue || (long)l.Right - l.Left > int.MaxValue)
            {
                throw c.Bad($"{where}: invalid bounds (top {l.Top}, left {l.Left}, bottom {l.Bottom}, right {l.Right})");
            }

            int nch = c.U16(where);
            if (nch > MaxChannels)
            {
                throw c.Bad($"{where}: invalid channel count {nch}");
            }

            l.Channels = new ChannelInfo[nch];
            for (int ch = 0; ch < nch; ch++)
            {
                l.Channels[ch] = new ChannelInfo(c.I16(where), c.U32(where));
            }

            if (c.Ascii(4, where) != "8BIM")
            {
                throw c.Bad($"{where}: blend mode signature is not '8BIM' (corrupt layer records)");
            }

            l.BlendMode = c.Ascii(4, where);
            l.Opacity = c.U8(where);
            l.Clipping = c.U8(where);
            l.Flags = c.U8(where);
            c.Skip(1, where);
            long extraLength = c.SectionLength($"{where} extra data");
            long extraEnd = c.Position + extraLength;
            long old = c.PushLimit(extraLength, $"{where} extra data");
            ReadExtraData(l, where);
            c.PopLimit(old);
            c.SeekTo(extraEnd, $"{where} extra data");
            return l;
        }

        private void ReadExtraData(RawLayer l, string where)
        {
            long maskLength = c.SectionLength($"{where} mask data");
            long maskEnd = c.Position + maskLength;
            // Only the plain user mask (20-byte record) is applied; with a vector mask as well (36+ bytes) the
            // channel/rectangle pairing differs and the mask is left off with a warning.
            if (maskLength > 20)
            {
                l.Notes.Add("layer mask with vector mask not applied");
            }
            else if (maskLength >= 18)
            {
                int t = c.I32(where), le = c.I32(where), b = c.I32(where), r = c.I32(where);
                byte defaultColor = c.U8(where), flags = c.U8(where);
                if (b >= t && r >= le)
                {
                    l.Mask = new MaskInfo(t, le, b, r, defaultColor, (flags & 0x02) != 0);
                }
            }

            c.SeekTo(maskEnd, $"{where} mask data");
            c.Skip(c.SectionLength($"{where} blending ranges"), $"{where} blending ranges");

            // Pascal name padded to a multiple of 4 bytes; 'luni' below supersedes it with the Unicode name.
            int nameLength = c.U8($"{where} name");
            l.Name = Encoding.Latin1.GetString(c.Bytes(nameLength, $"{where} name"));
            c.Skip(Math.Min(c.Remaining, (4 - ((nameLength + 1) % 4)) % 4), $"{where} name padding");

            while (c.Remaining >= 12)
            {
                string sig = c.Ascii(4, where);
                if (sig is not ("8BIM" or "8B64"))
                {
                    break;
                }

                string key = c.Ascii(4, where);
                long len = c.SectionLength($"{where} '{key}' block");
                long end = c.Position + len;
                long old = c.PushLimit(len, $"{where} '{key}' block");
                ReadLayerBlock(l, key, where);
                c.PopLimit(old);
                c.SeekTo(end, $"{where} '{key}' block");
            }
        }

        private void ReadLayerBlock(RawLayer l, string key, string where)
        {
            switch (key)
            {
                case "luni":
                    long chars = c.U32($"{where} unicode name");
                    if (chars * 2 > c.Remaining)
                    {
                        throw c.Bad($"{where}: unicode name longer than its block");
                    }

                    l.Name = Encoding.BigEndianUnicode.GetString(c.Bytes(chars * 2, $"{where} unicode name")).TrimEnd('\0');
                    break;
                case "lsct":
                case "lsdk":
                    l.SectionType = (int)c.U32($"{where} section divider");
                    if (c.Remaining >= 8 && c.Ascii(4, where) == "8BIM")
                    {
                        l.BlendMode = c.Ascii(4, where);
                    }

                    break;
                case "iOpa":
                    l.Fill = c.U8($"{where} fill opacity");
                    break;
                case "lfx2":
                case "lrFX":
                case "lmfx":
                    l.Notes.Add("layer effects are not rendered");
                    break;
                default:
                    if (AdjustmentKeys.Contains(key))
                    {
                        l.Notes.Add($"adjustment/fill layer ('{key.Trim()}') is read as its stored pixels only");
                    }

                    break;
            }
        }

        private void ReadChannelData(RawLayer l)
        {
            int w = l.Width, h = l.Height;
            bool hasPixels = w > 0 && h > 0 && l.SectionType == 0;
            if (hasPixels)
            {
                ImageLimits.Check(c.Path, w, h);
            }

            // Allocated when the first channel has proven it can hold the layer (see DecodePlane), not on the header's word.
            byte[]? rgba = null;
            bool sawAlpha = false;
            byte[]? mask = null;
            foreach (var ch in l.Channels)
            {
                string what = $"layer '{l.Name}' channel {ch.Id}";
                long start = c.Position;
                long old = c.PushLimit(ch.Length, what);
                if (ch.Length >= 2)
                {
                    ushort compression = c.U16(what);
                    if (hasPixels && TargetOffset(ch.Id) is int offset)
                    {
                        var plane = DecodePlane(compression, w, h, what);
                        rgba ??= new byte[checked(w * h * 4)];
                        for (int i = 0, j = offset; i < plane.Length; i++, j += 4)
                        {
                            rgba[j] = plane[i];
                        }

                        if (mode == PsdColorMode.Grayscale && ch.Id == 0)
                        {
                            for (int j = 0; j < rgba.Length; j += 4)
                            {
                                rgba[j + 1] = rgba[j];
                                rgba[j + 2] = rgba[j];
                            }
                        }

                        sawAlpha |= ch.Id == -1;
                    }
                    else if (hasPixels && ch.Id == -2 && l.Mask is { Disabled: false } m && m.Right > m.Left && m.Bottom > m.Top)
                    {
                        ImageLimits.Check(c.Path, m.Right - m.Left, m.Bottom - m.Top);
                        mask = DecodePlane(compression, m.Right - m.Left, m.Bottom - m.Top, what);
                    }
                }

                c.PopLimit(old);
                c.SeekTo(start + ch.Length, what);
            }

            if (!hasPixels)
            {
                return;
            }

            // A layer whose colour channels are all missing is treated as black (alpha decides what shows).
            rgba ??= new byte[checked(w * h * 4)];

            // No transparency channel means an opaque layer (e.g. Photoshop's locked "Background").
            if (!sawAlpha)
            {
                for (int j = 3; j < rgba.Length; j += 4)
                {
                    rgba[j] = 255;
                }
            }

            if (l.Mask is { Disabled: false } mi && mask is not null)
            {
                ApplyMask(l, rgba, mi, mask);
            }

            l.Pixels = new RgbaImage(w, h, rgba);
        }

        /// <summary>Applies a user (raster) layer mask to the layer's alpha, as Photoshop displays it.</summary>
        private void ApplyMask(RawLayer l, byte[] rgba, MaskInfo m, byte[]? mask)
        {
            int mw = m.Right - m.Left;
            bool any = false;
            for (int y = 0; y < l.Height; y++)
            {
                int cy = l.Top + y;
                for (int x = 0; x < l.Width; x++)
                {
                    int cx = l.Left + x;
                    byte mv = mask is not null && cy >= m.Top && cy < m.Bottom && cx >= m.Left && cx < m.Right
                        ? mask[((cy - m.Top) * mw) + (cx - m.Left)]
                        : m.DefaultColor;
                    if (mv != 255)
                    {
                        int i = (((y * l.Width) + x) * 4) + 3;
                        rgba[i] = (byte)(((rgba[i] * mv) + 127) / 255);
                        any = true;
                    }
                }
            }

            if (any)
            {
                warnings.Add($"layer '{l.Name}': layer mask applied to alpha");
            }
        }

        private int? TargetOffset(short id) => mode == PsdColorMode.Grayscale
            ? id switch { 0 => 0, -1 => 3, _ => null }
            : id switch { 0 => 0, 1 => 1, 2 => 2, -1 => 3, _ => null };

        /// <summary>Decodes one w x h channel plane at the cursor (after its compression word).</summary>
        private byte[] DecodePlane(ushort compression, int w, int h, string what)
        {
            // Refuse before allocating when the stored bytes cannot expand to w x h: PackBits expands at most 64x
            // (plus 2 bytes of row length per row), deflate at most ~1032x.
            long stored = c.Remaining, pixels = (long)w * h;
            bool plausible = compression switch
            {
                0 => stored >= pixels,
                1 => stored >= 2L * h && pixels <= (stored - (2L * h) + h) * 64,
                _ => pixels <= (stored + 64) * 1100,
            };
            if (!plausible && compression <= 3)
            {
                throw c.Bad($"{what}: {stored} bytes of data cannot hold a {w}x{h} channel (truncated or corrupt)");
            }

            var plane = new byte[checked(w * h)];
            switch (compression)
            {
                case 0:
                    c.Bytes(plane.Length, what).CopyTo(plane);
                    break;
                case 1:
                    var counts = new int[h];
                    for (int y = 0; y < h; y++)
                    {
                        counts[y] = c.U16($"{what} RLE row lengths");
                    }

                    for (int y = 0; y < h; y++)
                    {
                        if (!PackBits.TryDecode(c.Bytes(counts[y], $"{what} RLE row {y}"), plane.AsSpan(y * w, w)))
                        {
                            throw c.Bad($"{what}: corrupt RLE data in row {y}");
                        }
                    }

                    break;
                case 2:
                case 3:
                    Inflate(c.Bytes(c.Remaining, what), plane, what);
                    if (compression == 3)
                    {
                        Undelta(plane, w);
                    }

                    break;
                default:
                    throw c.Bad($"{what}: unknown compression method {compression}");
            }

            return plane;
        }

        private void Inflate(ReadOnlySpan<byte> src, byte[] dst, string what)
        {
            try
            {
                using var input = new MemoryStream(src.ToArray());
                using var z = new ZLibStream(input, CompressionMode.Decompress);
                int got = 0;
                while (got < dst.Length)
                {
                    int n = z.Read(dst, got, dst.Length - got);
                    if (n == 0)
                    {
                        break;
                    }

                    got += n;
                }

                if (got != dst.Length)
                {
                    throw c.Bad($"{what}: ZIP data is shorter than the channel");
                }
            }
            catch (InvalidDataException e)
            {
                throw new BadInputException(c.Path, $"{what}: corrupt ZIP data", e);
            }
        }

        /// <summary>The image data section: the flattened composite, planar, all channels of the header.</summary>
        private RgbaImage ReadMergedImage()
        {
            const string what = "merged image data";
            ushort compression = c.U16(what);
            long stored = c.Remaining, samples = (long)width * height * channelCount;
            bool plausible = compression switch
            {
                0 => stored >= samples,
                1 => stored >= 2L * channelCount * height && samples <= stored * 64,
                _ => samples <= (stored + 64) * 1100,
            };
            if (!plausible)
            {
                throw c.Bad($"{what}: {stored} bytes cannot hold a {width}x{height} image with {channelCount} channels (truncated or corrupt)");
            }

            int planes = mode == PsdColorMode.Grayscale ? 1 : 3;
            var img = RgbaImage.Filled(width, height, 0, 0, 0, 255);
            var px = img.Pixels;
            int n = width * height;
            switch (compression)
            {
                case 0:
                    c.Need((long)n * channelCount, what);
                    for (int p = 0; p < planes; p++)
                    {
                        Scatter(c.Bytes(n, what), px, p);
                    }

                    break;
                case 1:
                    var counts = new int[channelCount * height];
                    for (int i = 0; i < counts.Length; i++)
                    {
                        counts[i] = c.U16($"{what} RLE row lengths");
                    }

                    // Extra channels (alpha, spot) are not decoded, but they must be present: a cut there is truncation too.
                    c.Need(counts.Sum(x => (long)x), what);
                    var row = new byte[width];
                    for (int p = 0; p < planes; p++)
                    {
                        for (int y = 0; y < height; y++)
                        {
                            if (!PackBits.TryDecode(c.Bytes(counts[(p * height) + y], what), row))
                            {
                                throw c.Bad($"{what}: corrupt RLE data in channel {p} row {y}");
                            }

                            Scatter(row, px.AsSpan(y * width * 4, width * 4), p);
                        }
                    }

                    break;
                case 2:
                case 3:
                    var all = new byte[checked(n * channelCount)];
                    Inflate(c.Bytes(c.Remaining, what), all, what);
                    for (int p = 0; p < planes; p++)
                    {
                        var plane = all.AsSpan(p * n, n);
                        if (compression == 3)
                        {
                            Undelta(plane, width);
                        }

                        Scatter(plane, px, p);
                    }

                    break;
                default:
                    throw c.Bad($"{what}: unknown compression method {compression}");
            }

            if (planes == 1)
            {
                for (int i = 0; i < px.Length; i += 4)
                {
                    px[i + 1] = px[i];
                    px[i + 2] = px[i];
                }
            }

            return img;
        }

        /// <summary>ZIP with prediction: each byte is stored as the difference from its left neighbour.</summary>
        private static void Undelta(Span<byte> plane, int w)
        {
            for (int row = 0; row < plane.Length; row += w)
            {
                for (int i = row + 1; i < row + w; i++)
                {
                    plane[i] += plane[i - 1];
                }
            }
        }

        private static void Scatter(ReadOnlySpan<byte> plane, Span<byte> rgba, int channel)
        {
            for (int i = 0, j = channel; i < plane.Length; i++, j += 4)
            {
                rgba[j] = plane[i];
            }
        }

        /// <summary>
        /// Turns the flat record list (bottom first, groups bracketed by a divider below and the group record above)
        /// into pixel layers with inherited visibility and opacity.
        /// </summary>
        private List<PsdLayer> ResolveGroups(List<RawLayer> raw)
        {
            var result = new List<PsdLayer>();
            var groups = new Stack<(string Name, bool Hidden, double Opacity)>();
            for (int i = raw.Count - 1; i >= 0; i--)
            {
                var l = raw[i];
                var parent = groups.Count > 0 ? groups.Peek() : (Name: string.Empty, Hidden: false, Opacity: 1.0);
                if (l.SectionType is 1 or 2)
                {
                    double opacity = parent.Opacity * (l.Opacity / 255.0) * (l.Fill / 255.0);
                    if (l.Opacity != 255 || l.Fill != 255)
                    {
                        warnings.Add($"group '{l.Name}': group opacity is applied to each layer inside (exact only when they do not overlap)");
                    }

                    if (l.BlendMode is not ("pass" or "norm"))
                    {
                        warnings.Add($"group '{l.Name}': blend mode '{l.BlendMode.Trim()}' read as pass-through");
                    }

                    string path = parent.Name.Length == 0 ? l.Name : parent.Name + "/" + l.Name;
                    groups.Push((path, parent.Hidden || l.HiddenSelf, opacity));
                    continue;
                }

                if (l.SectionType == 3)
                {
                    if (groups.Count == 0)
                    {
                        warnings.Add("unbalanced group divider ignored");
                    }
                    else
                    {
                        groups.Pop();
                    }

                    continue;
                }

                bool hidden = parent.Hidden || l.HiddenSelf;
                if (!hidden)
                {
                    if (l.BlendMode != "norm")
                    {
                        warnings.Add($"layer '{l.Name}': blend mode '{l.BlendMode.Trim()}' read as normal");
                    }

                    if (l.Clipping != 0)
                    {
                        warnings.Add($"layer '{l.Name}': clipping mask applied as alpha of the layer below");
                    }

                    warnings.AddRange(l.Notes.Distinct().Select(n => $"layer '{l.Name}': {n}"));
                    if (l.Pixels is null)
                    {
                        warnings.Add($"layer '{l.Name}' has no pixels; left out");
                    }
                }

                result.Add(new PsdLayer
                {
                    Name = l.Name,
                    Left = l.Left,
                    Top = l.Top,
                    Width = l.Width,
                    Height = l.Height,
                    Pixels = l.Pixels,
                    Opacity = l.Opacity,
                    FillOpacity = l.Fill,
                    BlendMode = l.BlendMode,
                    HiddenSelf = l.HiddenSelf,
                    Hidden = hidden,
                    GroupOpacity = parent.Opacity,
                    Clipped = l.Clipping != 0,
                    GroupPath = parent.Name,
                });
            }

            if (groups.Count > 0)
            {
                warnings.Add("unclosed layer group");
            }

            result.Reverse();
            return result;
        }
    }
}
