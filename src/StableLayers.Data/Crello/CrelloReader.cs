using System.Globalization;
using Parquet;
using StableLayers.Core;
using StableLayers.Core.Imaging;

namespace StableLayers.Data.Crello;

/// <summary>
/// Reads Hugging Face <c>cyberagent/crello</c> v5 parquet shards (CDLA-Permissive-2.0): per canvas <c>id</c>,
/// <c>canvas_width</c>, <c>canvas_height</c> and per-element sequences <c>type</c>, <c>left</c>, <c>top</c>,
/// <c>width</c>, <c>height</c> (canvas pixels), <c>angle</c> (degrees), <c>opacity</c> and <c>image</c>
/// (list of struct {bytes, path}); text attributes are ignored. Integer columns may be any integer width
/// (ClassLabel columns are int64 indices), float columns float32 or float64. Rows are read one row group at a
/// time, so memory stays bounded by the largest row group.
/// </summary>
public static class CrelloReader
{
    private static readonly string[] ElementNumberColumns = ["left", "top", "width", "height", "angle", "opacity"];

    /// <summary>Renders every canvas of the file, in file order. Bad files, rows or element images throw <see cref="BadInputException"/> naming them.</summary>
    public static IEnumerable<CrelloSample> ReadSamples(string path, CrelloOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        options ??= CrelloOptions.LayerD;
        if (options.ShortSide is <= 0)
        {
            throw new ArgumentException($"ShortSide must be positive, got {options.ShortSide}", nameof(options));
        }

        return ReadSamplesIterator(path, options);
    }

    /// <summary>Number of canvases (rows) in the file, from the footer alone.</summary>
    public static long CountRows(string path)
    {
        var reader = Open(path);
        try
        {
            return Enumerable.Range(0, reader.RowGroupCount).Sum(i => Guard(path, () => reader.RowGroups[i].RowCount));
        }
        finally
        {
            reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static IEnumerable<CrelloSample> ReadSamplesIterator(string path, CrelloOptions options)
    {
        var reader = Open(path);
        try
        {
            long firstRow = 0;
            for (int g = 0; g < reader.RowGroupCount; g++)
            {
                var designs = ReadRowGroup(reader, g, firstRow, path);
                firstRow += designs.Count;
                foreach (var design in designs)
                {
                    yield return new CrelloSample(design.Id, CrelloRenderer.Render(design, options, path));
                }
            }
        }
        finally
        {
            reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static ParquetReader Open(string path)
    {
        if (!File.Exists(path))
        {
            throw new BadInputException(path, "file not found");
        }

        return Guard(path, () =>
        {
            var stream = File.OpenRead(path);
            try
            {
                // Parquet.Net is async-only; Task.Run keeps a caller's synchronization context out of its awaits.
                return Task.Run(() => ParquetReader.CreateAsync(stream, leaveStreamOpen: false)).GetAwaiter().GetResult();
            }
            catch
            {
                stream.Dispose();
                throw;
            }
        });
    }

    private static List<CrelloDesign> ReadRowGroup(ParquetReader reader, int group, long firstRow, string path) =>
        Guard(path, () => Task.Run(() => ReadRowGroupAsync(reader, group, firstRow, path)).GetAwaiter().GetResult());

    private static async Task<List<CrelloDesign>> ReadRowGroupAsync(ParquetReader reader, int group, long firstRow, string path)
    {
        var schema = reader.Schema;
        var idField = ParquetColumns.Scalar(schema, "id", path);
        var widthField = ParquetColumns.Scalar(schema, "canvas_width", path);
        var heightField = ParquetColumns.Scalar(schema, "canvas_height", path);
        var numberLists = ElementNumberColumns.Select(c => ParquetColumns.List(schema, c, path)).ToArray();
        var imageList = ParquetColumns.List(schema, "image", path, "bytes");
        var typeList = ParquetColumns.Has(schema, "type") ? ParquetColumns.List(schema, "type", path) : ((Parquet.Schema.DataField, int)?)null;

        using var rg = reader.OpenRowGroupReader(group);
        var ids = await ParquetColumns.ReadScalarStringsAsync(rg, idField, path).ConfigureAwait(false);
        var widths = await ParquetColumns.ReadScalarNumbersAsync(rg, widthField, path).ConfigureAwait(false);
        var heights = await ParquetColumns.ReadScalarNumbersAsync(rg, heightField, path).ConfigureAwait(false);
        var numbers = new List<double?>[numberLists.Length][];
        for (int c = 0; c < numberLists.Length; c++)
        {
            numbers[c] = await ParquetColumns.ReadNumberListsAsync(rg, numberLists[c], path).ConfigureAwait(false);
        }

        var images = await ParquetColumns.ReadBinaryListsAsync(rg, imageList, path).ConfigureAwait(false);
        var types = typeList is { } tl ? await ParquetColumns.ReadLabelListsAsync(rg, tl, path).ConfigureAwait(false) : null;

        var designs = new List<CrelloDesign>(ids.Length);
        for (int r = 0; r < ids.Length; r++)
        {
            long row = firstRow + r;
            string id = string.IsNullOrEmpty(ids[r]) ? string.Create(CultureInfo.InvariantCulture, $"row{row}") : ids[r]!;
            string where = string.Create(CultureInfo.InvariantCulture, $"row {row} (id {id})");
            int canvasWidth = CanvasSide(widths[r], "canvas_width", where, path);
            int canvasHeight = CanvasSide(heights[r], "canvas_height", where, path);
            int count = images[r].Count;
            for (int c = 0; c < numberLists.Length; c++)
            {
                if (numbers[c][r].Count != count)
                {
                    throw new BadInputException(path, $"{where}: column '{ElementNumberColumns[c]}' has {numbers[c][r].Count} elements but 'image' has {count}");
                }
            }

            var elements = new List<CrelloElement>(count);
            for (int e = 0; e < count; e++)
            {
                double Get(int c)
                {
                    double? v = numbers[c][r][e];
                    return v is double d && double.IsFinite(d)
                        ? d
                        : throw new BadInputException(path, $"{where}, element {e}: '{ElementNumberColumns[c]}' is {(v is null ? "null" : "not finite")}");
                }

                byte[] bytes = images[r][e] ?? throw new BadInputException(path, $"{where}, element {e}: image has no bytes");
                string? type = types is not null && e < types[r].Count ? types[r][e] : null;
                elements.Add(new CrelloElement(type, Get(0), Get(1), Get(2), Get(3), Get(4), Math.Clamp(Get(5), 0, 1), bytes));
            }

            designs.Add(new CrelloDesign(row, id, canvasWidth, canvasHeight, elements));
        }

        return designs;
    }

    private static int CanvasSide(double? value, string column, string where, string path) =>
        value is double v && double.IsFinite(v) && v >= 1 && v <= ImageLimits.DefaultMaxPixels
            ? (int)Math.Round(v)
            : throw new BadInputException(path, $"{where}: {column} is {(value is null ? "null" : value.Value.ToString(CultureInfo.InvariantCulture))}, not a canvas size");

    /// <summary>Parquet.Net reports damage as many exception types; callers see one <see cref="BadInputException"/> naming the file.</summary>
    private static T Guard<T>(string path, Func<T> action)
    {
        try
        {
            return action();
        }
        catch (BadInputException)
        {
            throw;
        }
        catch (OperationCanceledException)
        {
            throw;
        }
        catch (OutOfMemoryException)
        {
            throw;
        }
        catch (Exception e)
        {
            throw new BadInputException(path, $"not a readable parquet file ({e.GetType().Name}: {e.Message.Split('\n')[0]})", e);
        }
    }
}
