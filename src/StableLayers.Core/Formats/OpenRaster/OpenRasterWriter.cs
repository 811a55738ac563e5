using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Xml;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;

namespace StableLayers.Core.Formats.OpenRaster;

/// <summary>
/// Writes OpenRaster (.ora): a zip whose first entry is an uncompressed <c>mimetype</c> (so the type can be sniffed
/// at a fixed offset), then stack.xml (top layer first), data/*.png layers cropped to their content with x/y
/// offsets, mergedimage.png and Thumbnails/thumbnail.png (at most 256 px a side).
/// </summary>
public static class OpenRasterWriter
{
    public const string MimeType = "image/openraster";
    public const string SrcOver = "svg:src-over";
    public const int ThumbnailMaxSide = 256;

    public static void Write(string path, LayerStack stack)
    {
        ArgumentNullException.ThrowIfNull(stack);
        AtomicFile.Write(path, s => Write(s, stack));
    }

    public static void Write(Stream output, LayerStack stack)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(stack);
        using var zip = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true);

        // NoCompression makes .NET store the entry (method 0), as the spec requires for mimetype.
        AddEntry(zip, "mimetype", Encoding.ASCII.GetBytes(MimeType), CompressionLevel.NoCompression);

        var rects = new PixelRect[stack.Count];
        for (int i = 0; i < stack.Count; i++)
        {
            var rect = LayerCrop.ContentBounds(stack[i]);

            // A PNG cannot be empty: an empty layer is stored as one transparent pixel at the origin.
            rects[i] = rect.IsEmpty ? new PixelRect(0, 0, 1, 1) : rect;
        }

        AddEntry(zip, "stack.xml", StackXml(stack, rects), CompressionLevel.Optimal);
        for (int i = 0; i < stack.Count; i++)
        {
            // PNG data is already deflated; storing it again compressed would only cost time.
            AddEntry(zip, LayerEntryName(i), PngCodec.Encode(LayerCrop.Crop(stack[i], rects[i])), CompressionLevel.NoCompression);
        }

        var merged = stack.Composite();
        AddEntry(zip, "mergedimage.png", PngCodec.Encode(merged), CompressionLevel.NoCompression);
        AddEntry(zip, "Thumbnails/thumbnail.png", PngCodec.Encode(Thumbnail(merged, ThumbnailMaxSide)), CompressionLevel.NoCompression);
    }

    internal static string LayerEntryName(int index) => $"data/layer_{index:D3}.png";

    private static byte[] StackXml(LayerStack stack, PixelRect[] rects)
    {
        var settings = new XmlWriterSettings { Encoding = new UTF8Encoding(false), Indent = true };
        using var ms = new MemoryStream();
        using (var xw = XmlWriter.Create(ms, settings))
        {
            xw.WriteStartDocument();
            xw.WriteStartElement("image");
            xw.WriteAttributeString("version", "0.0.6");
            xw.WriteAttributeString("w", stack.Width.ToString(CultureInfo.InvariantCulture));
            xw.WriteAttributeString("h", stack.Height.ToString(CultureInfo.InvariantCulture));
            xw.WriteStartElement("stack");

            // The spec lists the topmost layer first.
            for (int i = stack.Count - 1; i >= 0; i--)
            {
                xw.WriteStartElement("layer");
                xw.WriteAttributeString("name", stack.Layers[i].Name);
                xw.WriteAttributeString("src", LayerEntryName(i));
                xw.WriteAttributeString("x", rects[i].X.ToString(CultureInfo.InvariantCulture));
                xw.WriteAttributeString("y", rects[i].Y.ToString(CultureInfo.InvariantCulture));
                xw.WriteAttributeString("opacity", "1.0");
                xw.WriteAttributeString("visibility", "visible");
                xw.WriteAttributeString("composite-op", SrcOver);
                xw.WriteEndElement();
            }

            xw.WriteEndElement();
            xw.WriteEndElement();
            xw.WriteEndDocument();
        }

        return ms.ToArray();
    }

    private static void AddEntry(ZipArchive zip, string name, byte[] content, CompressionLevel level)
    {
        var entry = zip.CreateEntry(name, level);
        using var s = entry.Open();
        s.Write(content);
    }

    /// <summary>Box-filtered downscale (in premultiplied space, so transparent pixels do not bleed colour) to fit <paramref name="maxSide"/>.</summary>
    internal static RgbaImage Thumbnail(RgbaImage src, int maxSide)
    {
        double scale = Math.Min(1.0, (double)maxSide / Math.Max(src.Width, src.Height));
        int w = Math.Max(1, (int)Math.Round(src.Width * scale)), h = Math.Max(1, (int)Math.Round(src.Height * scale));
        if (w == src.Width && h == src.Height)
        {
            return src.Clone();
        }

        var dst = new RgbaImage(w, h);
        for (int y = 0; y < h; y++)
        {
            int sy0 = (int)((long)y * src.Height / h), sy1 = Math.Max(sy0 + 1, (int)((long)(y + 1) * src.Height / h));
            for (int x = 0; x < w; x++)
            {
                int sx0 = (int)((long)x * src.Width / w), sx1 = Math.Max(sx0 + 1, (int)((long)(x + 1) * src.Width / w));
                double r = 0, g = 0, b = 0, a = 0;
                for (int sy = sy0; sy < sy1; sy++)
                {
                    for (int sx = sx0; sx < sx1; sx++)
                    {
                        int i = ((sy * src.Width) + sx) * 4;
                        double al = src.Pixels[i + 3];
                        r += src.Pixels[i] * al;
                        g += src.Pixels[i + 1] * al;
                        b += src.Pixels[i + 2] * al;
                        a += al;
                    }
                }

                int o = ((y * w) + x) * 4;
                int count = (sy1 - sy0) * (sx1 - sx0);
                if (a > 0)
                {
                    dst.Pixels[o] = (byte)Math.Round(r / a);
                    dst.Pixels[o + 1] = (byte)Math.Round(g / a);
                    dst.Pixels[o + 2] = (byte)Math.Round(b / a);
                    dst.Pixels[o + 3] = (byte)Math.Round(a / count);
                }
            }
        }

        return dst;
    }
}
