using System.Text.Json;
using StableLayers.Core;
using static TorchSharp.torch;

namespace StableLayers.Model.Weights;

/// <summary>
/// Writes .safetensors files (see <see cref="SafetensorsFile"/> for the layout). The header is computed from shapes
/// alone, then tensors are converted and written one at a time, so at most one converted copy exists at once.
/// </summary>
public static class SafetensorsWriter
{
    /// <param name="stream">Destination, positioned at the start of the file.</param>
    /// <param name="tensors">Name and tensor (any device, any supported dtype), written in this order.</param>
    /// <param name="floatDType">If set, floating-point tensors are stored in this type; integer tensors keep theirs.</param>
    /// <param name="metadata">The header's "__metadata__" (string to string).</param>
    public static void Write(Stream stream, IReadOnlyList<KeyValuePair<string, Tensor>> tensors, ScalarType? floatDType = null,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(tensors);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("safetensors data is little-endian; big-endian hosts are not supported");
        }

        var types = tensors.Select(kv => StoredType(kv.Value, floatDType)).ToArray();
        var header = BuildHeader(tensors, types, metadata);
        stream.Write(BitConverter.GetBytes((long)header.Length));
        stream.Write(header);
        for (int i = 0; i < tensors.Count; i++)
        {
            using var scope = NewDisposeScope();
            var t = tensors[i].Value.detach().to(types[i]).cpu().contiguous();
            if (t.numel() > 0)
            {
                stream.Write(t.bytes);
            }
        }
    }

    /// <summary>Writes a whole file atomically (temp file, then rename).</summary>
    public static void WriteFile(string path, IReadOnlyList<KeyValuePair<string, Tensor>> tensors, ScalarType? floatDType = null,
        IReadOnlyDictionary<string, string>? metadata = null) =>
        AtomicFile.Write(path, s => Write(s, tensors, floatDType, metadata));

    /// <summary>Bytes one tensor takes in a file when stored with <paramref name="floatDType"/>.</summary>
    public static long StoredBytes(Tensor tensor, ScalarType? floatDType)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return tensor.numel() * SafetensorsDType.SizeOf(StoredType(tensor, floatDType));
    }

    private static ScalarType StoredType(Tensor t, ScalarType? floatDType) =>
        floatDType is { } f && t.is_floating_point() ? f : t.dtype;

    private static byte[] BuildHeader(IReadOnlyList<KeyValuePair<string, Tensor>> tensors, ScalarType[] types, IReadOnlyDictionary<string, string>? metadata)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata)
                {
                    w.WriteString(k, v);
                }

                w.WriteEndObject();
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            long offset = 0;
            for (int i = 0; i < tensors.Count; i++)
            {
                var (name, t) = (tensors[i].Key, tensors[i].Value);
                if (!seen.Add(name) || name == "__metadata__")
                {
                    throw new ArgumentException($"duplicate or reserved tensor name '{name}'", nameof(tensors));
                }

                long bytes = t.numel() * SafetensorsDType.SizeOf(types[i]);
                w.WriteStartObject(name);
                w.WriteString("dtype", SafetensorsDType.NameOf(types[i]));
                w.WriteStartArray("shape");
                foreach (var d in t.shape)
                {
                    w.WriteNumberValue(d);
                }

                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + bytes);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += bytes;
            }

            w.WriteEndObject();
        }

        // Pad with spaces so the data section starts 8-byte aligned, as the reference implementation does.
        int len = (int)ms.Length;
        int padded = (len + 7) / 8 * 8;
        var header = new byte[padded];
        ms.GetBuffer().AsSpan(0, len).CopyTo(header);
        header.AsSpan(len).Fill((byte)' ');
        return header;
    }
}
