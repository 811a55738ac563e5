using static TorchSharp.torch;

namespace StableLayers.Model.Weights;

/// <summary>The safetensors dtype strings we read and write, and their TorchSharp types and element sizes.</summary>
public static class SafetensorsDType
{
    private static readonly (string Name, ScalarType Type, int Size)[] Table =
    [
        ("F64", ScalarType.Float64, 8),
        ("F32", ScalarType.Float32, 4),
        ("F16", ScalarType.Float16, 2),
        ("BF16", ScalarType.BFloat16, 2),
        ("I64", ScalarType.Int64, 8),
        ("I32", ScalarType.Int32, 4),
        ("I16", ScalarType.Int16, 2),
        ("I8", ScalarType.Int8, 1),
        ("U8", ScalarType.Byte, 1),
        ("BOOL", ScalarType.Bool, 1),
    ];

    public static bool TryParse(string name, out ScalarType type, out int elementSize)
    {
        foreach (var e in Table)
        {
            if (e.Name == name)
            {
                (type, elementSize) = (e.Type, e.Size);
                return true;
            }
        }

        (type, elementSize) = (default, 0);
        return false;
    }

    /// <summary>Float16, BFloat16, Float32 or Float64: the types a module's floating-point state can be converted between.</summary>
    public static bool IsFloating(ScalarType type) =>
        type is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;

    public static string NameOf(ScalarType type)
    {
        foreach (var e in Table)
        {
            if (e.Type == type)
            {
                return e.Name;
            }
        }

        throw new NotSupportedException($"safetensors: no dtype name for {type}");
    }

    public static int SizeOf(ScalarType type)
    {
        foreach (var e in Table)
        {
            if (e.Type == type)
            {
                return e.Size;
            }
        }

        throw new NotSupportedException($"safetensors: unsupported dtype {type}");
    }
}
