using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Judges.Tests;
using StableLayers.Model.Tests;
using StableLayers.TestSupport;
using static StableLayers.Cli.Tests.InProcessCli;

namespace StableLayers.Cli.Tests;

/// <summary>decompose --caption auto on a tiny random model in the released folder layout, against the in-process fake VLM.</summary>
public sealed class CaptionCliTests
{
    private static byte[] LayerBytes(string dir) => LayeredFolder.Read(dir).Images.SelectMany(i => i.Pixels).ToArray();

    [Fact]
    public async Task Caption_auto_decomposes_with_the_caption_as_prompt_and_asks_once_per_image()
    {
        await using var server = await FakeVlmServer.StartAsync();
        using var tmp = new TempDir();
        string model = tmp.File("model");
        ReleasedLayoutFolder.Write(model);
        PngCodec.Write(tmp.File("a.png"), TestImages.Noise(32, 32, 7));
        string[] common = ["--layers", "2", "--steps", "1", "--model", model, "--device", "cpu"];
        string[] caption = ["--caption", "auto", "--caption-endpoint", server.BaseUrl.ToString(), "--caption-model", "fake-vlm", "--caption-language", "en", "--caption-cache", tmp.File("captions")];

        var (code, stdout, err) = Run(["decompose", tmp.File("a.png"), .. common, .. caption, "--out", tmp.File("auto")]);
        Assert.True(code == 0, err);
        Assert.Contains($"a.png: caption: {server.CaptionReply}", stdout, StringComparison.Ordinal);
        Assert.Equal(1, server.Requests);

        // The caption is the prompt: the same layers as passing it by hand, other layers than the empty prompt.
        (code, _, err) = Run(["decompose", tmp.File("a.png"), .. common, "--prompt", server.CaptionReply, "--out", tmp.File("manual")]);
        Assert.True(code == 0, err);
        (code, _, err) = Run(["decompose", tmp.File("a.png"), .. common, "--out", tmp.File("empty")]);
        Assert.True(code == 0, err);
        Assert.Equal(LayerBytes(tmp.File("manual/a")), LayerBytes(tmp.File("auto/a")));
        Assert.NotEqual(LayerBytes(tmp.File("empty/a")), LayerBytes(tmp.File("auto/a")));

        // A second run answers from the disk cache; a given prompt is never replaced by a caption.
        (code, stdout, err) = Run(["decompose", tmp.File("a.png"), .. common, .. caption, "--out", tmp.File("again")]);
        Assert.True(code == 0, err);
        Assert.Contains("a.png: caption (cached): ", stdout, StringComparison.Ordinal);
        (code, stdout, err) = Run(["decompose", tmp.File("a.png"), .. common, .. caption, "--prompt", "a poster", "--out", tmp.File("given")]);
        Assert.True(code == 0, err);
        Assert.DoesNotContain("caption", stdout, StringComparison.Ordinal);
        Assert.Equal(1, server.Requests);
    }

    [Fact]
    public async Task Garbage_timeouts_bad_options_and_the_tiny_model_are_one_line_exit_2()
    {
        await using var server = await FakeVlmServer.StartAsync();
        using var tmp = new TempDir();
        string model = tmp.File("model");
        ReleasedLayoutFolder.Write(model);
        PngCodec.Write(tmp.File("a.png"), TestImages.Noise(16, 16, 1));
        PngCodec.Write(tmp.File("b.png"), TestImages.Noise(16, 16, 2));
        string url = server.BaseUrl.ToString();

        void AssertBad(string contains, params string[] args)
        {
            var (code, _, err) = Run(["decompose", tmp.File("a.png"), tmp.File("b.png"), "--layers", "2", "--steps", "1", "--device", "cpu", "--out", tmp.File("out"), .. args]);
            Assert.Equal(2, code);
            Assert.StartsWith("error: ", err, StringComparison.Ordinal);
            Assert.Contains(contains, err, StringComparison.Ordinal);
            Assert.Single(err.TrimEnd().Split('\n'));
        }

        string cache = tmp.File("captions");
        server.CaptionReply = "<|im_end|> 42";
        AssertBad("--caption-endpoint: no caption from fake-vlm", "--model", model, "--caption", "auto", "--caption-endpoint", url, "--caption-model", "fake-vlm", "--caption-retries", "0", "--caption-cache", cache);
        Assert.Equal(1, server.Requests);

        server.DefaultFault = FakeFault.Slow;
        server.SlowDelay = TimeSpan.FromSeconds(5);
        server.CaptionReply = "A fine caption.";
        AssertBad("timed out after 0.2 s", "--model", model, "--caption", "auto", "--caption-endpoint", url, "--caption-model", "fake-vlm", "--caption-retries", "0", "--caption-timeout", "0.2", "--caption-cache", cache);
        // The first image's failure stops the command: the second image is not asked about.
        Assert.Equal(2, server.Requests);
        Assert.False(Directory.Exists(tmp.File("out/a")));

        AssertBad("--caption-endpoint: --caption auto needs", "--model", model, "--caption", "auto", "--caption-model", "fake-vlm");
        AssertBad("--caption-endpoint: not an http(s) URL", "--model", model, "--caption", "auto", "--caption-endpoint", "ftp://x/v1", "--caption-model", "fake-vlm");
        AssertBad("--caption-model: --caption auto needs", "--model", model, "--caption", "auto", "--caption-endpoint", url);
        AssertBad("--caption-endpoint: only used with --caption auto", "--model", model, "--caption-endpoint", url);
        AssertBad("--caption-timeout", "--model", model, "--caption", "auto", "--caption-endpoint", url, "--caption-model", "m", "--caption-timeout", "0");
        AssertBad("--caption: auto captions need a model in the released layout", "--caption", "auto", "--caption-endpoint", url, "--caption-model", "fake-vlm");
        Assert.Equal(2, server.Requests);
    }
}
