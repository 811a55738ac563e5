using System.Text.Json;
using StableLayers.Core;
using StableLayers.Judges.Captions;
using StableLayers.Judges.Vlm;
using StableLayers.TestSupport;

namespace StableLayers.Judges.Tests;

/// <summary>The released pipeline's automatic caption through an OpenAI-compatible VLM (the in-process fake server).</summary>
public sealed class VlmCaptionerTests
{
    private static VlmCaptionerOptions Options(FakeVlmServer server, CaptionLanguage language = CaptionLanguage.English) => new()
    {
        Endpoint = server.BaseUrl,
        Model = "fake-vlm",
        ApiKeyEnv = "STABLELAYERS_TEST_NO_SUCH_KEY",
        Language = language,
        Timeout = TimeSpan.FromSeconds(10),
        MaxRetries = 0,
        RetryBaseDelay = TimeSpan.FromMilliseconds(10),
    };

    [Theory]
    [InlineData(CaptionLanguage.English, "image_caption_prompt_en")]
    [InlineData(CaptionLanguage.Chinese, "image_caption_prompt_cn")]
    public void The_instructions_rebuild_the_reference_template_exactly(CaptionLanguage language, string key)
    {
        // reference.json holds the reference's string values as Python parsed them (tests/golden/make_caption_golden.py).
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestData.GoldenDir, "caption-instructions", "reference.json")));
        string want = doc.RootElement.GetProperty(key).GetString()!;
        string rebuilt = "<|im_start|>system\n" + CaptionInstructions.System + "<|im_end|>\n<|im_start|>user\n" + CaptionInstructions.For(language)
            + "<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n";
        Assert.Equal(want, rebuilt);
    }

    [Fact]
    public async Task A_good_reply_is_the_caption_and_sends_the_reference_instruction_and_the_image()
    {
        await using var server = await FakeVlmServer.StartAsync();
        server.CaptionReply = "  <|im_start|>A red poster with the word \"SALE\".<|im_end|>\n";
        var image = TestImages.Noise(40, 24, 3);
        using var captioner = new VlmCaptioner(Options(server));
        string caption = await captioner.CaptionAsync(image);

        Assert.Equal("A red poster with the word \"SALE\".", caption);
        var request = Assert.Single(server.Received);
        Assert.Equal("caption", request.Kind);
        var image0 = Assert.Single(request.Images);
        Assert.True(image.PixelsEqual(image0));
        var messages = request.Body["messages"]!.AsArray();
        Assert.Equal("system", messages[0]!["role"]!.GetValue<string>());
        Assert.Equal(CaptionInstructions.System, messages[0]!["content"]!.GetValue<string>());
        var user = messages[1]!["content"]!.AsArray();
        Assert.Equal(CaptionInstructions.English, user[0]!["text"]!.GetValue<string>());
        Assert.Equal("image_url", user[1]!["type"]!.GetValue<string>());
        Assert.Equal(512, (request.Body["max_completion_tokens"] ?? request.Body["max_tokens"])!.GetValue<int>());
        Assert.Equal(0, request.Body["temperature"]!.GetValue<double>());
    }

    [Fact]
    public async Task The_cache_answers_a_second_request_for_the_same_image_and_only_for_it()
    {
        await using var server = await FakeVlmServer.StartAsync();
        using var tmp = new TempDir();
        var image = TestImages.Noise(32, 32, 1);
        using (var first = new VlmCaptioner(Options(server), new JudgementCache(tmp.Path)))
        {
            Assert.Equal(server.CaptionReply, await first.CaptionAsync(image));
        }

        server.CaptionReply = "a different answer";
        using var second = new VlmCaptioner(Options(server), new JudgementCache(tmp.Path));
        Assert.NotEqual("a different answer", await second.CaptionAsync(image));
        Assert.Equal((1, 1, 0), (server.Requests, second.CacheHits, second.Requests));

        // Another image, or the other language's instruction, is another question.
        Assert.Equal("a different answer", await second.CaptionAsync(TestImages.Noise(32, 32, 2)));
        using var chinese = new VlmCaptioner(Options(server, CaptionLanguage.Chinese), new JudgementCache(tmp.Path));
        Assert.Equal("a different answer", await chinese.CaptionAsync(image));
        Assert.Contains("# 图像标注器", server.Received[^1].Text, StringComparison.Ordinal);
        Assert.Equal(3, server.Requests);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   \n ")]
    [InlineData("<|im_end|><|endoftext|>")]
    [InlineData("1234 !!! ...")]
    [InlineData("caption\u0000\u0001")]
    public async Task A_reply_without_a_caption_is_retried_then_one_line_naming_the_source(string reply)
    {
        await using var server = await FakeVlmServer.StartAsync();
        server.CaptionReply = reply;
        using var captioner = new VlmCaptioner(Options(server) with { MaxRetries = 1, Source = "--caption-endpoint" });
        var e = await Assert.ThrowsAsync<BadInputException>(() => captioner.CaptionAsync(TestImages.Noise(16, 16, 0)));
        Assert.StartsWith("--caption-endpoint: ", e.Message, StringComparison.Ordinal);
        Assert.Contains("not a caption", e.Message, StringComparison.Ordinal);
        Assert.Contains("2 attempts", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(2, server.Requests);
    }

    [Fact]
    public async Task A_timeout_is_one_line()
    {
        await using var server = await FakeVlmServer.StartAsync();
        server.DefaultFault = FakeFault.Slow;
        server.SlowDelay = TimeSpan.FromSeconds(5);
        using var captioner = new VlmCaptioner(Options(server) with { Timeout = TimeSpan.FromMilliseconds(300) });
        var e = await Assert.ThrowsAsync<BadInputException>(() => captioner.CaptionAsync(TestImages.Noise(16, 16, 0)));
        Assert.Contains("timed out after 0.3 s (1 attempt)", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }
}
