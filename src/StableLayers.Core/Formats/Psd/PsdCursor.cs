using System.Buffers.Binary;
using System.Text;

namespace StableLayers.Core.Formats.Psd;

/// <summary>
/// A bounds-checked big-endian reader over a byte buffer. Every read past the end (or past a section limit)
/// becomes a <see cref="BadInputException"/> naming the file, so corrupt PSDs never surface as IndexOutOfRange.
/// </summary>
internal sealed class PsdCursor
{
    private readonly byte[] data;

    public PsdCursor(byte[] data, string path)
    {
        this.data = data;
        Path = path;
        End = data.Length;
    }

    public string Path { get; }

    public long Position { get; set; }

    /// <summary>Reads may not go past this offset (the end of the current section).</summary>
    public long End { get; private set; }

    public long Remaining => End - Position;

    public BadInputException Bad(string problem) => new(Path, problem);

    /// <summary>Restricts reads to the next <paramref name="length"/> bytes; returns the previous limit for <see cref="PopLimit"/>.</summary>
    public long PushLimit(long length, string what)
    {
        Need(length, what);
        long old = End;
        End = Position + length;
        return old;
    }

    public void PopLimit(long oldEnd) => End = oldEnd;

    public void Need(long count, string what)
    {
        if (count < 0 || count > Remaining)
        {
            throw Bad($"truncated or corrupt file: {what} needs {count} bytes at offset {Position}, but only {Math.Max(0, Remaining)} remain");
        }
    }

    public ReadOnlySpan<byte> Bytes(long count, string what)
    {
        Need(count, what);
        var span = data.AsSpan((int)Position, (int)count);
        Position += count;
        return span;
    }

    public void Skip(long count, string what) => Bytes(count, what);

    public void SeekTo(long offset, string what)
    {
        if (offset < Position - int.MaxValue || offset > End)
        {
            throw Bad($"truncated or corrupt file: {what} ends at offset {offset}, past the end of its section at {End}");
        }

        Position = offset;
    }

    public byte U8(string what) => Bytes(1, what)[0];

    public ushort U16(string what) => BinaryPrimitives.ReadUInt16BigEndian(Bytes(2, what));

    public short I16(string what) => BinaryPrimitives.ReadInt16BigEndian(Bytes(2, what));

    public uint U32(string what) => BinaryPrimitives.ReadUInt32BigEndian(Bytes(4, what));

    public int I32(string what) => BinaryPrimitives.ReadInt32BigEndian(Bytes(4, what));

    public string Ascii(int count, string what) => Encoding.Latin1.GetString(Bytes(count, what));

    /// <summary>Reads a u32 section length and checks that the section fits in what remains.</summary>
    public long SectionLength(string what)
    {
        long length = U32(what + " length");
        Need(length, what);
        return length;
    }
}
