using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Text.Json;
using StableLayers.Core;
using static TorchSharp.torch;

// For the tests of CopyChunkBytes.
[assembly: InternalsVisibleTo("StableLayers.Model.Tests")]

namespace StableLayers.Model.Weights;

/// <summary>
/// Reads a .safetensors file: an 8-byte little-endian header length, a JSON header
/// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the raw little-endian data.
/// The header is validated on open: sizes match shapes, and the tensors' byte ranges tile the data section exactly
/// (no gap, no overlap, nothing missing or left over), as the reference implementation requires. Tensor data is read
/// through a memory mapping of the file, one tensor's range mapped at a time, so reading a multi-GB shard keeps at
/// most one tensor's pages mapped in this process. Corrupt or truncated files raise <see cref="BadInputException"/>
/// naming the file.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    // A real header is a few hundred KB even for sharded LLMs; larger values mean a corrupt length field.
    private const long MaxHeaderBytes = 100L << 20;

    /// <summary>
    /// Span-based copies are limited to int.MaxValue bytes; larger tensors (the Qwen2.5-VL token embedding is 1.09 GB
    /// in bf16) are copied in chunks of this size. Settable so tests can exercise the chunking on small tensors.
    /// </summary>
    internal static int CopyChunkBytes { get; set; } = 1 << 30;

    private readonly FileStream _stream;
    private readonly long _dataStart;
    private readonly long _fileLength;
    private readonly Dictionary<string, SafetensorsEntry> _byName;
    private MemoryMappedFile? _map;

    private SafetensorsFile(string path, FileStream stream, long dataStart, long fileLength, List<SafetensorsEntry> entries, Dictionary<string, string> metadata)
    {
        Path = path;
        _stream = stream;
        _dataStart = dataStart;
        _fileLength = fileLength;
        Entries = entries;
        Metadata = metadata;
        _byName = entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
    }

    public string Path { get; }

    /// <summary>Entries in header order.</summary>
    public IReadOnlyList<SafetensorsEntry> Entries { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The file's size in bytes (header and data).</summary>
    public long Length => _fileLength;

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

        // Kept open for the file's lifetime: the mapping is made from this handle, so a file replaced by rename
        // after validation is never read.
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
            CheckLayout(path, entries, length - dataStart);
            return new SafetensorsFile(path, stream, dataStart, length, entries, metadata);
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
            CopyBytes(e, t);
            return t;
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies one tensor into <paramref name="target"/> (same shape; any device; converted to the target's dtype).
    /// A contiguous CPU target of the file's dtype is filled straight from the mapping; otherwise the tensor is read
    /// into a temporary CPU tensor of the file's dtype first, so at most one tensor's temporary exists at a time.
    /// </summary>
    public void CopyTo(string name, Tensor target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var e = this[name];
        var type = e.ScalarType ?? throw new BadInputException(Path, $"tensor '{name}' has unsupported dtype {e.DType}");
        if (!target.shape.SequenceEqual(e.Shape))
        {
            throw new ArgumentException($"{Path}: tensor '{name}' is [{string.Join(",", e.Shape)}], the target [{string.Join(",", target.shape)}]", nameof(target));
        }

        using var noGrad = no_grad();
        if (target.device_type == TorchSharp.DeviceType.CPU && target.dtype == type && target.is_contiguous())
        {
            CopyBytes(e, target);
            return;
        }

        using var staged = Read(name);
        target.copy_(staged);
    }

    /// <summary>Unmaps the file (the next read maps it again); the loader calls it when it moves to the next shard.</summary>
    public void ReleaseMapping()
    {
        _map?.Dispose();
        _map = null;
    }

    public void Dispose()
    {
        ReleaseMapping();
        _stream.Dispose();
    }

    // Fills a contiguous CPU tensor of the entry's dtype with the entry's bytes, mapping only that byte range.
    private void CopyBytes(SafetensorsEntry e, Tensor dest)
    {
        if (e.ByteLength == 0)
        {
            return;
        }

        // Reading a mapped page past the end of a file that shrank after validation would kill the process (SIGBUS);
        // a changed length is reported instead.
        if (_stream.Length != _fileLength)
        {
            throw new BadInputException(Path, $"file changed while loading ({_fileLength} bytes when opened, {_stream.Length} now)");
        }

        _map ??= MemoryMappedFile.CreateFromFile(_stream, mapName: null, capacity: 0, MemoryMappedFileAccess.Read,
            HandleInheritability.None, leaveOpen: true);
        using var view = _map.CreateViewAccessor(_dataStart + e.Begin, e.ByteLength, MemoryMappedFileAccess.Read);
        var buffer = view.SafeMemoryMappedViewHandle;
        using var flat = dest.view(-1);
        long elementSize = e.ByteLength / Math.Max(1, e.ElementCount);
        long chunkElements = Math.Max(1, CopyChunkBytes / elementSize);
        for (long start = 0; start < e.ElementCount; start += chunkElements)
        {
            long count = Math.Min(chunkElements, e.ElementCount - start);
            using var part = flat.narrow(0, start, count);
            buffer.ReadSpan((ulong)(view.PointerOffset + start * elementSize), part.bytes);
        }
    }

    private static void CheckLayout(string path, List<SafetensorsEntry> entries, long dataLength)
    {
        long expected = 0;
        SafetensorsEntry? previous = null;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin != expected)
            {
                string where = previous is null ? "the start of the data" : $"'{previous.Name}' (which ends at {expected})";
                throw new BadInputException(path, $"tensor '{e.Name}' starts at data byte {e.Begin}, not right after {where}: overlapping or gapped data_offsets");
            }

            expected = e.End;
            previous = e;
        }

        if (expected > dataLength)
        {
            throw new BadInputException(path, $"truncated: tensor '{previous!.Name}' ends at data byte {expected}, but the file holds only {dataLength} data bytes");
        }

        if (expected < dataLength)
        {
            throw new BadInputException(path, $"{dataLength - expected} bytes after the last tensor's data (the header describes {expected} data bytes): corrupt header or not a safetensors file");
        }
    }

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

            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (!names.Add(prop.Name))
                {
                    throw new BadInputException(path, $"tensor '{prop.Name}' appears twice in the header");
                }

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
        catch (Exception ex) when (ex is InvalidOperationException or KeyNotFoundException or FormatException or OverflowException)
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
        if (SafetensorsDType.TryParse(dtype, out _, out int size) && checked(entry.ElementCount * size) != entry.ByteLength)
        {
            throw new BadInputException(path, $"tensor '{prop.Name}': {entry.ByteLength} bytes do not hold [{string.Join(",", shape)}] of {dtype}");
        }

        return entry;
    }
}
