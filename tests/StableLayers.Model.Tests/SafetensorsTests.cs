using System.Text;
using StableLayers.Core;
using StableLayers.Model.Weights;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public sealed class SafetensorsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("st-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ReadsAHandWrittenFile()
    {
        // Built byte by byte from the format description, independently of our writer.
        string header = """{"__metadata__":{"format":"pt"},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""";
        var bytes = new List<byte>();
        bytes.AddRange(BitConverter.GetBytes((long)header.Length));
        bytes.AddRange(Encoding.UTF8.GetBytes(header));
        bytes.AddRange(BitConverter.GetBytes(1.5f));
        bytes.AddRange(BitConverter.GetBytes(-2f));
        bytes.AddRange(BitConverter.GetBytes(-7L));
        string path = Path.Combine(_dir, "hand.safetensors");
        File.WriteAllBytes(path, [.. bytes]);

        using var scope = NewDisposeScope();
        using var f = SafetensorsFile.Open(path);
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal(["b", "a"], f.Entries.Select(e => e.Name));
        Assert.Equal([1.5f, -2f], f.Read("a").data<float>().ToArray());
        Assert.Equal(-7L, f.Read("b").item<long>());
    }

    [Fact]
    public void WriterOutputHasAlignedHeaderAndRoundTripsEveryDType()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var tensors = new List<KeyValuePair<string, Tensor>>
        {
            new("f32", randn(3, 5)),
            new("bf16", randn(4, 2).to(bfloat16)),
            new("f16", randn(7).to(float16)),
            new("i64", tensor(new long[] { long.MinValue, 0, 42 })),
            new("empty", zeros(0, 3)),
            new("scalar", tensor(3.25f)),
        };
        string path = Path.Combine(_dir, "all.safetensors");
        SafetensorsWriter.WriteFile(path, tensors, metadata: new Dictionary<string, string> { ["k"] = "v" });

        var raw = File.ReadAllBytes(path);
        long headerLen = BitConverter.ToInt64(raw, 0);
        Assert.Equal(0, headerLen % 8);
        Assert.Contains("\"dtype\":\"BF16\"", Encoding.UTF8.GetString(raw, 8, (int)headerLen), StringComparison.Ordinal);

        using var f = SafetensorsFile.Open(path);
        Assert.Equal("v", f.Metadata["k"]);
        foreach (var (name, t) in tensors)
        {
            var back = f.Read(name);
            Assert.Equal(t.dtype, back.dtype);
            Assert.Equal(t.shape, back.shape);
            Assert.True(back.to(float64).allclose(t.to(float64), rtol: 0, atol: 0), name);
        }
    }

    [Fact]
    public void FloatDTypeConvertsOnlyFloatingTensors()
    {
        using var scope = NewDisposeScope();
        var x = randn(5);
        string path = Path.Combine(_dir, "bf.safetensors");
        SafetensorsWriter.WriteFile(path, [new("x", x), new("n", tensor(new long[] { 9 }))], floatDType: ScalarType.BFloat16);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal("BF16", f["x"].DType);
        Assert.Equal("I64", f["n"].DType);
        Assert.True(f.Read("x").allclose(x.to(bfloat16)));
    }

    [Fact]
    public void TruncatedFileIsBadInputNamingTheFile()
    {
        using var scope = NewDisposeScope();
        string path = Path.Combine(_dir, "cut.safetensors");
        SafetensorsWriter.WriteFile(path, [new("w", randn(64, 64))]);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^100]);
        var ex = Assert.Throws<BadInputException>(() => SafetensorsFile.Open(path));
        Assert.Equal(path, ex.FilePath);
        Assert.Contains("truncated", ex.Message, StringComparison.Ordinal);

        File.WriteAllBytes(path, bytes[..5]);
        Assert.Equal(path, Assert.Throws<BadInputException>(() => SafetensorsFile.Open(path)).FilePath);
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("[1,2,3]")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}""")] // 8 bytes cannot hold 4 floats
    [InlineData("""{"w":{"dtype":"F32","shape":[2]}}""")]
    public void BadHeaderIsBadInputNamingTheFile(string header)
    {
        string path = Path.Combine(_dir, "bad.safetensors");
        var bytes = BitConverter.GetBytes((long)header.Length).Concat(Encoding.UTF8.GetBytes(header)).Concat(new byte[16]).ToArray();
        File.WriteAllBytes(path, bytes);
        Assert.Equal(path, Assert.Throws<BadInputException>(() => SafetensorsFile.Open(path)).FilePath);
    }

    [Fact]
    public void AbsurdHeaderLengthIsBadInput()
    {
        string path = Path.Combine(_dir, "len.safetensors");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(long.MaxValue), .. new byte[32]]);
        Assert.Equal(path, Assert.Throws<BadInputException>(() => SafetensorsFile.Open(path)).FilePath);
    }
}
