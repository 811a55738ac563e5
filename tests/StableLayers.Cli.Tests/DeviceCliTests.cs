using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.TestSupport;
using static StableLayers.Cli.Tests.InProcessCli;

namespace StableLayers.Cli.Tests;

/// <summary>--device on every command that runs the model: devices this (CPU) build cannot use are one-line errors, exit 2, before anything loads.</summary>
public class DeviceCliTests
{
    private static void AssertOneLine(string err, string start)
    {
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, err);
        Assert.StartsWith(start, lines[0], StringComparison.Ordinal);
    }

    [Fact]
    public void DevicesThisBuildCannotUseAreOneLineErrorsNamingTheOption()
    {
        using var tmp = new TempDir();
        PngCodec.Write(tmp.File("x.png"), RgbaImage.Filled(8, 8, 1, 2, 3, 255));
        foreach (var device in new[] { "cuda", "cuda:7" })
        {
            var (code, _, err) = Run("decompose", tmp.File("x.png"), "--out", tmp.File("o"), "--device", device);
            Assert.Equal(2, code);
            AssertOneLine(err, "error: --device: ");
            Assert.Contains("CPU-only libtorch", err);
            Assert.Contains("-p:TorchBackend=cuda", err);
        }

        var (c2, _, e2) = Run("decompose", tmp.File("x.png"), "--out", tmp.File("o"), "--device", "gpu0");
        Assert.Equal(2, c2);
        AssertOneLine(e2, "error: --device: unknown device 'gpu0'");
        Assert.False(Directory.Exists(tmp.File("o")));

        var (c3, _, e3) = Run("pretrain", "--out", tmp.File("m"), "--device", "cuda:1");
        Assert.Equal(2, c3);
        AssertOneLine(e3, "error: --device: cuda:1 asked for");

        var (c4, _, e4) = Run("train", "--run-dir", tmp.File("r"), "--device", "cuda");
        Assert.Equal(2, c4);
        AssertOneLine(e4, "error: --device: cuda:0 asked for");
        Assert.False(Directory.Exists(tmp.File("r")));

        // The config's device key: well-formed but unusable here names the file and key; malformed is a config error.
        File.WriteAllText(tmp.File("gpu.toml"), "device = \"cuda:0\"\n");
        var (c5, _, e5) = Run("train", "--config", tmp.File("gpu.toml"), "--run-dir", tmp.File("r"));
        Assert.Equal(2, c5);
        AssertOneLine(e5, $"error: {tmp.File("gpu.toml")}: device: cuda:0 asked for");
        File.WriteAllText(tmp.File("typo.toml"), "device = \"cdua\"\n");
        var (c6, _, e6) = Run("train", "--config", tmp.File("typo.toml"), "--run-dir", tmp.File("r"));
        Assert.Equal(2, c6);
        AssertOneLine(e6, $"error: {tmp.File("typo.toml")}: device 'cdua' is not one of auto, cpu, cuda, cuda:N");
        // --device wins over the config's key: the next problem is the missing base model, not the device.
        var (c7, _, e7) = Run("train", "--config", tmp.File("gpu.toml"), "--run-dir", tmp.File("ok"), "--device", "cpu");
        Assert.Equal(2, c7);
        AssertOneLine(e7, "error: models/tiny-base: base model folder not found");
    }

    [Fact]
    public void DecomposeRunsInBfloat16CloseToFloat32AndRefusesDTypesTheDeviceCannotRun()
    {
        using var tmp = new TempDir();
        string image = Path.Combine(TestData.RealPsdDev, "groups", "composite.png");
        var (c32, _, e32) = Run("decompose", image, "--layers", "3", "--steps", "4", "--dtype", "float32", "--out", tmp.File("f32"));
        Assert.True(c32 == 0, e32);
        var (c16, _, e16) = Run("decompose", image, "--layers", "3", "--steps", "4", "--dtype", "bfloat16", "--out", tmp.File("bf16"));
        Assert.True(c16 == 0, e16);
        var (maxDiff, meanDiff) = ImageDiff.LayerBytes(
            LayeredFolder.Read(Path.Combine(tmp.File("f32"), "composite")), LayeredFolder.Read(Path.Combine(tmp.File("bf16"), "composite")));

        // bf16 weights change the result a little (the bf16-gap benchmark measures it), never wholesale.
        Assert.True(maxDiff > 0, "bf16 gave bit-identical layers: the dtype did not reach the model");
        Assert.True(meanDiff < 4.0, $"mean |bf16 - fp32| = {meanDiff:F2}/255");

        var (c, _, e) = Run("decompose", image, "--dtype", "float16", "--out", tmp.File("h"));
        Assert.Equal(2, c);
        AssertOneLine(e, "error: --dtype: float16 is not supported on the CPU");
        var (c2, _, e2) = Run("decompose", image, "--dtype", "int8", "--out", tmp.File("h"));
        Assert.Equal(2, c2);
        AssertOneLine(e2, "error: --dtype: unknown dtype 'int8'");
        Assert.False(Directory.Exists(tmp.File("h")));
    }
}
