using Parquet;
using Parquet.Data;
using Parquet.Schema;

namespace StableLayers.Data.Crello;

/// <summary>
/// Reads whole columns of one row group through Parquet.Net's raw API and rebuilds rows from the Dremel
/// levels: values come packed (nulls omitted), a repetition level of 0 starts a new row, and a definition level
/// tells whether a list is null or empty, an element is null, or a value is present. Hugging Face writes
/// sequences as 3-level lists (optional group / repeated group / element), which is what this expects.
/// </summary>
internal static class ParquetColumns
{
    /// <summary>The leaf of a scalar column.</summary>
    public static DataField Scalar(ParquetSchema schema, string name, string path)
    {
        var field = Find(schema, name, path);
        return field is DataField { MaxRepetitionLevel: 0 } leaf
            ? leaf
            : throw new Core.BadInputException(path, $"column '{name}' should be a scalar but is a {field.SchemaType}");
    }

    /// <summary>The leaf of a list column (optionally the named member of a list of structs) and the definition level at which a list element exists.</summary>
    public static (DataField Leaf, int ElementLevel) List(ParquetSchema schema, string name, string path, string? structMember = null)
    {
        var field = Find(schema, name, path);
        if (field is not ListField list)
        {
            throw new Core.BadInputException(path, $"column '{name}' should be a list but is a {field.SchemaType}");
        }

        var item = list.Item;
        if (structMember is not null)
        {
            item = (item as StructField)?.Fields.FirstOrDefault(c => c.Name == structMember)
                ?? throw new Core.BadInputException(path, $"column '{name}' should be a list of structs with a '{structMember}' member");
        }

        return item is DataField { MaxRepetitionLevel: 1 } leaf
            ? (leaf, list.MaxDefinitionLevel)
            : throw new Core.BadInputException(path, $"column '{name}' has an unsupported nesting");
    }

    public static bool Has(ParquetSchema schema, string name) => schema.Fields.Any(f => f.Name == name);

    /// <summary>Numbers of any integer or floating type, as double (null where the cell is null).</summary>
    public static async Task<double?[]> ReadScalarNumbersAsync(ParquetRowGroupReader rg, DataField field, string path)
    {
        var column = await ReadNumbersAsync(rg, field, path).ConfigureAwait(false);
        return column.Scalars(rg.RowCount);
    }

    public static async Task<string?[]> ReadScalarStringsAsync(ParquetRowGroupReader rg, DataField field, string path)
    {
        var column = await ReadStringsAsync(rg, field, path).ConfigureAwait(false);
        return column.Scalars(rg.RowCount);
    }

    public static async Task<List<double?>[]> ReadNumberListsAsync(ParquetRowGroupReader rg, (DataField Leaf, int ElementLevel) list, string path)
    {
        var column = await ReadNumbersAsync(rg, list.Leaf, path).ConfigureAwait(false);
        return column.Lists(rg.RowCount, list.ElementLevel, path, list.Leaf.Name);
    }

    /// <summary>String lists; integer lists (ClassLabel indices) come back as their decimal text.</summary>
    public static async Task<List<string?>[]> ReadLabelListsAsync(ParquetRowGroupReader rg, (DataField Leaf, int ElementLevel) list, string path)
    {
        if (list.Leaf.ClrType == typeof(ReadOnlyMemory<char>))
        {
            var strings = await ReadStringsAsync(rg, list.Leaf, path).ConfigureAwait(false);
            return strings.Lists(rg.RowCount, list.ElementLevel, path, list.Leaf.Name);
        }

        var numbers = await ReadNumbersAsync(rg, list.Leaf, path).ConfigureAwait(false);
        var lists = numbers.Lists(rg.RowCount, list.ElementLevel, path, list.Leaf.Name);
        return lists.Select(l => l.Select(v => v?.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList()).ToArray();
    }

    public static async Task<List<byte[]?>[]> ReadBinaryListsAsync(ParquetRowGroupReader rg, (DataField Leaf, int ElementLevel) list, string path)
    {
        if (list.Leaf.ClrType != typeof(ReadOnlyMemory<byte>))
        {
            throw new Core.BadInputException(path, $"column '{list.Leaf.Path}' should hold binary data but holds {list.Leaf.ClrType.Name}");
        }

        // The raw buffers are pooled: copy each value out before the column data is disposed.
        var column = await ReadAsync<ReadOnlyMemory<byte>, byte[]>(rg, list.Leaf, v => v.ToArray()).ConfigureAwait(false);
        return column.Lists(rg.RowCount, list.ElementLevel, path, list.Leaf.Name);
    }

    private static Field Find(ParquetSchema schema, string name, string path) =>
        schema.Fields.FirstOrDefault(f => f.Name == name)
        ?? throw new Core.BadInputException(path, $"missing column '{name}' (expected the cyberagent/crello v5 schema)");

    private static Task<Column<double?>> ReadNumbersAsync(ParquetRowGroupReader rg, DataField f, string path)
    {
        var t = f.ClrType;
        return t == typeof(float) ? ReadAsync<float, double?>(rg, f, v => v)
            : t == typeof(double) ? ReadAsync<double, double?>(rg, f, v => v)
            : t == typeof(long) ? ReadAsync<long, double?>(rg, f, v => v)
            : t == typeof(int) ? ReadAsync<int, double?>(rg, f, v => v)
            : t == typeof(short) ? ReadAsync<short, double?>(rg, f, v => v)
            : t == typeof(sbyte) ? ReadAsync<sbyte, double?>(rg, f, v => v)
            : t == typeof(byte) ? ReadAsync<byte, double?>(rg, f, v => v)
            : t == typeof(ushort) ? ReadAsync<ushort, double?>(rg, f, v => v)
            : t == typeof(uint) ? ReadAsync<uint, double?>(rg, f, v => v)
            : t == typeof(ulong) ? ReadAsync<ulong, double?>(rg, f, v => v)
            : throw new Core.BadInputException(path, $"column '{f.Path}' should be numeric but holds {t.Name}");
    }

    private static Task<Column<string?>> ReadStringsAsync(ParquetRowGroupReader rg, DataField f, string path) =>
        f.ClrType == typeof(ReadOnlyMemory<char>)
            ? ReadAsync<ReadOnlyMemory<char>, string?>(rg, f, v => v.ToString())
            : throw new Core.BadInputException(path, $"column '{f.Path}' should hold strings but holds {f.ClrType.Name}");

    private static async Task<Column<TOut>> ReadAsync<TIn, TOut>(ParquetRowGroupReader rg, DataField f, Func<TIn, TOut> convert)
        where TIn : struct
    {
        using var raw = (RawColumnData<TIn>)await rg.ReadRawColumnDataBaseAsync(f).ConfigureAwait(false);
        int[]? def = f.MaxDefinitionLevel > 0 ? raw.DefinitionLevels.ToArray() : null;
        int[]? rep = f.MaxRepetitionLevel > 0 ? raw.RepetitionLevels.ToArray() : null;
        int present = def is null ? checked((int)rg.RowCount) : def.Count(d => d == f.MaxDefinitionLevel);
        var packed = raw.Values;
        if (packed.Length < present)
        {
            throw new InvalidDataException($"column '{f.Path}' holds {packed.Length} values but its levels need {present}");
        }

        var values = new TOut[present];
        for (int i = 0; i < present; i++)
        {
            values[i] = convert(packed[i]);
        }

        return new Column<TOut>(values, def, rep, f.MaxDefinitionLevel);
    }

    /// <summary>Packed values plus levels, as read; <see cref="Scalars"/> and <see cref="Lists"/> put them back into rows.</summary>
    private sealed record Column<T>(T[] Values, int[]? Definition, int[]? Repetition, int MaxDefinition)
    {
        public T?[] Scalars(long rowCount)
        {
            var rows = new T?[rowCount];
            int k = 0;
            for (int r = 0; r < rows.Length; r++)
            {
                if (Definition is null || Definition[r] == MaxDefinition)
                {
                    rows[r] = Values[k++];
                }
            }

            return rows;
        }

        public List<T?>[] Lists(long rowCount, int elementLevel, string path, string name)
        {
            if (Definition is null || Repetition is null || Definition.Length != Repetition.Length)
            {
                throw new InvalidDataException($"list column '{name}' lacks repetition or definition levels");
            }

            var rows = new List<T?>[rowCount];
            int row = -1, k = 0;
            for (int i = 0; i < Definition.Length; i++)
            {
                if (Repetition[i] == 0)
                {
                    row++;
                    if (row >= rows.Length)
                    {
                        throw new Core.BadInputException(path, $"column '{name}' has more rows than the row group's {rowCount}");
                    }

                    rows[row] = [];
                }
                else if (row < 0)
                {
                    throw new Core.BadInputException(path, $"column '{name}' starts inside a list");
                }

                int d = Definition[i];
                if (d == MaxDefinition)
                {
                    rows[row].Add(Values[k++]);
                }
                else if (d >= elementLevel)
                {
                    rows[row].Add(default); // the element exists but is null
                }
            }

            if (row != rows.Length - 1)
            {
                throw new Core.BadInputException(path, $"column '{name}' has {row + 1} rows, the row group {rowCount}");
            }

            return rows;
        }
    }
}
