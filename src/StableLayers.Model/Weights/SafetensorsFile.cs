using System.Text.Json;
using StableLayers.Core;
using static TorchSharp.torch;

namespace StableLayers.Model.Weights;

/// <summary>
/// Reads a .safetensors file: an 8-byte little-endian header length, a JSON header
/// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the raw little-endian data.
/// The header is validated on open (offsets inside the file, sizes matching shapes); tensors are then read one at a
/// time straight into native tensor memory, so multi-GB shards never pass through a managed buffer.
/// Corrupt or truncated files raise <see cref="BadInputException"/> naming the file.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    // A real header is a few hundred KB even for sharded LLMs; larger values mean a corrupt length field.
    private const long MaxHeaderBytes = 100L << 20;

    private readonly FileStream _stream;
    private readonly long _dataStart;
    private readonly Dictionary<string, SafetensorsEntry> _byName;

    private SafetensorsFile(string path, FileStream stream, long dataStart, List<SafetensorsEntry> entries, Dictionary<string, string> metadata)
    {
        Path = path;
        _stream = stream;
        _dataStart = dataStart;
        Entries = entries;
        Metadata = metadata;
        _byName = entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
    }

    public string Path { get; }

    /// <summary>Entries in header order.</summary>
    public IReadOnlyList<SafetensorsEntry> Entries { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    public static SafetensorsFile Open(string path)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("safetensors data is little-endian; big-endian hosts are not supported");
        }

        if (!File.Exists(path))
        {
            throw new BadInputException(path, "safetensors file not found");
        }

        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        try
        {
            long length = stream.Length;
            Span<byte> lenBytes = stackalloc byte[8];
            if (length < 8 || stream.ReadAtLeast(lenBytes, 8, throwOnEndOfStream: false) < 8)
            {
                throw new BadInputException(path, $"truncated safetensors file ({length} bytes, no header length)");
            }

            long headerLen = BitConverter.ToInt64(lenBytes);
            if (headerLen <= 0 || headerLen > MaxHeaderBytes || headerLen > length - 8)
            {
                throw new BadInputException(path, $"bad safetensors header length {headerLen} (file has {length} bytes)");
            }

            var header = new byte[headerLen];
            stream.ReadExactly(header);
            var (entries, metadata) = ParseHeader(path, header);
            long dataStart = 8 + headerLen;
            long dataLength = length - dataStart;
            foreach (var e in entries)
            {
                if (e.End > dataLength)
                {
                    throw new BadInputException(path, $"truncated: tensor '{e.Name}' ends at data byte {e.End}, but the file holds only {dataLength} data bytes");
                }
            }

            return new SafetensorsFile(path, stream, dataStart, entries, metadata);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public SafetensorsEntry this[string name] =>
        _byName.TryGetValue(name, out var e) ? e : throw new KeyNotFoundException($"{Path}: no tensor '{name}'");

    /// <summary>Reads one tensor (CPU, the file's dtype). The caller owns and disposes it.</summary>
    public Tensor Read(string name)
    {
        var e = this[name];
        var type = e.ScalarType ?? throw new BadInputException(Path, $"tensor '{name}' has unsupported dtype {e.DType}");
        var t = empty(e.Shape, type);
        try
        {
            if (e.ByteLength > 0)
            {
                _stream.Seek(_dataStart + e.Begin, SeekOrigin.Begin);

                // Tensor.bytes is a span over the tensor's native storage: the file is read directly into it.
                _stream.ReadExactly(t.bytes);
            }

            return t;
        }
        catch (EndOfStreamException ex)
        {
            t.Dispose();
            throw new BadInputException(Path, $"truncated while reading tensor '{name}'", ex);
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    public void Dispose() => _stream.Dispose();

    private static (List<SafetensorsEntry> Entries, Dictionary<string, string> Metadata) ParseHeader(string path, byte[] header)
    {
        var entries = new List<SafetensorsEntry>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(header.AsMemory().TrimEnd((byte)' '));
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new BadInputException(path, "safetensors header is not a JSON object");
            }

            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    }

                    continue;
                }

                entries.Add(ParseEntry(path, prop));
            }
        }
        catch (JsonException ex)
        {
            throw new BadInputException(path, "safetensors header is not valid JSON: " + ex.Message, ex);
        }
        catch (Exception ex) when (ex is InvalidOperationException or KeyNotFoundException or FormatException)
        {
            throw new BadInputException(path, "malformed safetensors header: " + ex.Message, ex);
        }

        return (entries, metadata);
    }

    private static SafetensorsEntry ParseEntry(string path, JsonProperty prop)
    {
        var v = prop.Value;
        string dtype = v.GetProperty("dtype").GetString() ?? "";
        var shape = v.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
        var offsets = v.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
        if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || shape.Any(d => d < 0))
        {
            throw new BadInputException(path, $"tensor '{prop.Name}': bad shape or data_offsets");
        }

        var entry = new SafetensorsEntry(prop.Name, dtype, shape, offsets[0], offsets[1]);
        if (SafetensorsDType.TryParse(dtype, out _, out int size) && entry.ElementCount * size != entry.ByteLength)
        {
            throw new BadInputException(path, $"tensor '{prop.Name}': {entry.ByteLength} bytes do not hold [{string.Join(",", shape)}] of {dtype}");
        }

        return entry;
    }
}
