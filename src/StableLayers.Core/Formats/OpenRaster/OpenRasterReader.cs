using System.Globalization;
using System.IO.Compression;
using System.Xml;
using System.Xml.Linq;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;

namespace StableLayers.Core.Formats.OpenRaster;

/// <summary>
/// Reads OpenRaster (.ora) files: stack.xml with nested stacks, offsets, opacity and visibility; layer PNGs are
/// decoded exactly. The zip is treated as hostile: layer paths must stay inside the archive, entries are size-capped
/// while inflating, and every problem becomes a <see cref="BadInputException"/> naming the file and the entry.
/// </summary>
public static class OpenRasterReader
{
    /// <summary>Most layers accepted, so a tiny stack.xml cannot request unbounded full-canvas allocations.</summary>
    public const int MaxLayers = 1000;

    /// <summary>Cap on stack.xml's size.</summary>
    public const long MaxStackXmlBytes = 16L * 1024 * 1024;

    /// <summary>Cap on the total bytes inflated from one archive.</summary>
    public const long MaxTotalBytes = 2L * 1024 * 1024 * 1024;

    private const int MaxNesting = 64;

    public static OpenRasterDocument Read(string path)
    {
        using (var fs = InputFile.OpenRead(path))
        {
            return Read(fs, path);
        }
    }

    /// <summary>Reads an .ora from a seekable stream; <paramref name="name"/> is used in error messages.</summary>
    public static OpenRasterDocument Read(Stream stream, string name)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new BadInputException(name, $"not an OpenRaster file (not a readable zip archive: {e.Message})", e);
        }

        using (zip)
        {
            try
            {
                // The central directory is read lazily; corruption in it surfaces here or on first entry access.
                return new Parser(zip, name).Parse();
            }
            catch (InvalidDataException e)
            {
                throw new BadInputException(name, $"corrupt zip archive ({e.Message})", e);
            }
        }
    }

    public static LayerStack ReadStack(string path, bool addWhiteBackground = false) => Read(path).ToLayerStack(addWhiteBackground);

    /// <summary>True when <paramref name="src"/> is a plain relative path inside the archive (no '..', no root, no backslash, no drive).</summary>
    public static bool IsSafeEntryPath(string src) =>
        src.Length > 0 && src.Length <= 1024 && !src.StartsWith('/') && !src.Contains('\\') && !src.Contains(':') && !src.Contains('\0')
        && src.Split('/').All(seg => seg.Length > 0 && seg != "." && seg != "..");

    private sealed class Parser(ZipArchive zip, string name)
    {
        private readonly List<string> warnings = [];
        private readonly List<OpenRasterLayer> topFirst = [];
        private long inflated;
        private int width, height;

        public OpenRasterDocument Parse()
        {
            var mimeEntry = zip.GetEntry("mimetype") ?? throw Bad("not an OpenRaster file (no 'mimetype' entry)");
            string mime = System.Text.Encoding.ASCII.GetString(ReadEntry(mimeEntry, 256)).Trim();
            if (mime != OpenRasterWriter.MimeType)
            {
                throw Bad($"not an OpenRaster file (mimetype is '{mime}', expected '{OpenRasterWriter.MimeType}')");
            }

            if (zip.Entries[0].FullName != "mimetype")
            {
                warnings.Add("'mimetype' is not the first zip entry");
            }

            var stackEntry = zip.GetEntry("stack.xml") ?? throw Bad("missing 'stack.xml'");
            var doc = ParseXml(ReadEntry(stackEntry, MaxStackXmlBytes));
            var image = doc.Root;
            if (image is null || image.Name.LocalName != "image")
            {
                throw Bad("stack.xml: root element is not <image>");
            }

            long w = IntAttr(image, "w", -1), h = IntAttr(image, "h", -1);
            ImageLimits.Check(name, w, h);
            width = (int)w;
            height = (int)h;
            var root = image.Elements().FirstOrDefault(e => e.Name.LocalName == "stack") ?? throw Bad("stack.xml: <image> has no <stack>");
            Walk(root, 0, 0, 1.0, false, 0);
            topFirst.Reverse();
            return new OpenRasterDocument(width, height, topFirst, warnings);
        }

        /// <summary>Visits a stack's children in document order (top first), accumulating offsets, opacity and visibility.</summary>
        private void Walk(XElement stack, long x, long y, double opacity, bool hidden, int depth)
        {
            if (depth > MaxNesting)
            {
                throw Bad($"stack.xml: stacks nested deeper than {MaxNesting}");
            }

            foreach (var el in stack.Elements())
            {
                long ex = x + IntAttr(el, "x", 0), ey = y + IntAttr(el, "y", 0);
                double op = opacity * OpacityAttr(el);
                bool hid = hidden || (string?)el.Attribute("visibility") == "hidden";
                string elName = (string?)el.Attribute("name") ?? string.Empty;
                switch (el.Name.LocalName)
                {
                    case "stack":
                        if (OpacityAttr(el) < 1.0 && !hid)
                        {
                            warnings.Add($"stack '{elName}': stack opacity is applied to each layer inside (exact only when they do not overlap)");
                        }

                        Walk(el, ex, ey, op, hid, depth + 1);
                        break;
                    case "layer":
                        ReadLayer(el, elName, ex, ey, op, hid);
                        break;
                    default:
                        warnings.Add($"stack.xml: <{el.Name.LocalName}> element ignored");
                        break;
                }
            }
        }

        private void ReadLayer(XElement el, string layerName, long x, long y, double opacity, bool hidden)
        {
            if (topFirst.Count >= MaxLayers)
            {
                throw Bad($"more than {MaxLayers} layers");
            }

            string src = (string?)el.Attribute("src") ?? throw Bad($"stack.xml: layer '{layerName}' has no src");
            if (!IsSafeEntryPath(src))
            {
                throw Bad($"stack.xml: layer '{layerName}' has unsafe src '{src}' (must be a relative path inside the archive)");
            }

            var entry = zip.GetEntry(src) ?? throw Bad($"stack.xml: layer '{layerName}' refers to missing entry '{src}'");
            if (x is < int.MinValue / 2 or > int.MaxValue / 2 || y is < int.MinValue / 2 or > int.MaxValue / 2)
            {
                throw Bad($"stack.xml: layer '{layerName}' offset {x},{y} out of range");
            }

            // A layer PNG larger than a raw image at the pixel limit is not a plausible PNG.
            long limit = Math.Min(int.MaxValue - 64L, (ImageLimits.MaxPixels * 5) + (1 << 20));
            var pixels = PngCodec.Decode(ReadEntry(entry, limit), $"{name}: {src}");
            string composite = (string?)el.Attribute("composite-op") ?? OpenRasterWriter.SrcOver;
            if (composite != OpenRasterWriter.SrcOver && !hidden)
            {
                warnings.Add($"layer '{layerName}': composite-op '{composite}' read as {OpenRasterWriter.SrcOver}");
            }

            topFirst.Add(new OpenRasterLayer
            {
                Name = layerName,
                Pixels = pixels,
                Source = src,
                X = (int)x,
                Y = (int)y,
                Opacity = opacity,
                Hidden = hidden,
                CompositeOp = composite,
            });
        }

        private byte[] ReadEntry(ZipArchiveEntry entry, long limit)
        {
            // The declared size is checked first, but inflation is capped too: headers can lie.
            if (entry.Length > limit)
            {
                throw Bad($"entry '{entry.FullName}' is {entry.Length} bytes uncompressed, over the limit of {limit}");
            }

            try
            {
                using var s = entry.Open();
                using var ms = new MemoryStream();
                var buf = new byte[81920];
                int n;
                while ((n = s.Read(buf, 0, buf.Length)) > 0)
                {
                    ms.Write(buf, 0, n);
                    inflated += n;
                    if (ms.Length > limit || inflated > MaxTotalBytes)
                    {
                        throw Bad($"entry '{entry.FullName}' inflates past the size limit (zip bomb?)");
                    }
                }

                return ms.ToArray();
            }
            catch (InvalidDataException e)
            {
                throw new BadInputException(name, $"entry '{entry.FullName}' is corrupt or truncated ({e.Message})", e);
            }
            catch (IOException e)
            {
                throw new BadInputException(name, $"entry '{entry.FullName}' cannot be read ({e.Message})", e);
            }
        }

        private XDocument ParseXml(byte[] bytes)
        {
            var settings = new XmlReaderSettings
            {
                DtdProcessing = DtdProcessing.Prohibit,
                XmlResolver = null,
                MaxCharactersInDocument = MaxStackXmlBytes,
            };
            try
            {
                using var ms = new MemoryStream(bytes);
                using var xr = XmlReader.Create(ms, settings);
                return XDocument.Load(xr);
            }
            catch (XmlException e)
            {
                throw new BadInputException(name, $"stack.xml is malformed ({e.Message})", e);
            }
        }

        private long IntAttr(XElement el, string attr, long fallback)
        {
            string? s = (string?)el.Attribute(attr);
            if (s is null)
            {
                return fallback;
            }

            // The spec says integers, but some writers emit "12.0".
            if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v) && Math.Abs(v) < 1e12)
            {
                return (long)Math.Round(v);
            }

            throw Bad($"stack.xml: <{el.Name.LocalName}> attribute {attr}='{s}' is not a number");
        }

        private double OpacityAttr(XElement el)
        {
            string? s = (string?)el.Attribute("opacity");
            if (s is null)
            {
                return 1.0;
            }

            if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v))
            {
                return Math.Clamp(v, 0.0, 1.0);
            }

            throw Bad($"stack.xml: opacity '{s}' is not a number");
        }

        private BadInputException Bad(string problem) => new(name, problem);
    }
}
