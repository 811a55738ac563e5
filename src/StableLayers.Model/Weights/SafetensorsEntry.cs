using static TorchSharp.torch;

namespace StableLayers.Model.Weights;

/// <summary>One tensor's header record: dtype, shape, and its byte range relative to the start of the data section.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;

    public long ElementCount => Shape.Aggregate(1L, (a, b) => checked(a * b));

    /// <summary>The TorchSharp type, or null for dtypes we cannot read (e.g. F8 variants).</summary>
    public ScalarType? ScalarType => SafetensorsDType.TryParse(DType, out var t, out _) ? t : null;
}
