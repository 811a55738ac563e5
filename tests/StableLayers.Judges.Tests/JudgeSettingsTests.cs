using System.Text.Json;
using StableLayers.Core;
using StableLayers.Judges.Rubric;
using StableLayers.Judges.Vlm;

namespace StableLayers.Judges.Tests;

public class JudgeSettingsTests
{
    [Fact]
    public void KindIsParsedIntoTheEnumWhenReadAndWrittenBackByName()
    {
        var s = JsonSerializer.Deserialize<JudgeSettings>("""{"kind": "vlm", "endpoint": "http://127.0.0.1:8000/v1", "model": "m"}""")!;
        Assert.Equal(JudgeKind.Vlm, s.Kind);
        Assert.Null(s.Problem());
        Assert.Contains("\"kind\":\"vlm\"", JsonSerializer.Serialize(s), StringComparison.Ordinal);
        Assert.Equal(JudgeKind.Rubric, JsonSerializer.Deserialize<JudgeSettings>("{}")!.Kind);

        var e = Assert.Throws<SettingValueException>(() => JsonSerializer.Deserialize<JudgeSettings>("""{"kind": "gpt"}"""));
        Assert.Equal("kind", e.Key);
        Assert.Equal("'gpt' is not one of rubric, vlm", e.Message);
        Assert.Contains("needs judge.endpoint", new JudgeSettings { Kind = JudgeKind.Vlm }.Problem(), StringComparison.Ordinal);
    }

    [Fact]
    public void TheFactoryBuildsTheConfiguredJudge()
    {
        Assert.IsType<RubricJudge>(JudgeFactory.Create(new JudgeSettings(), cacheDir: null));
        using var vlm = Assert.IsType<VlmJudge>(JudgeFactory.Create(new JudgeSettings { Kind = JudgeKind.Vlm, Endpoint = "http://127.0.0.1:9/v1", Model = "m" }, cacheDir: null));
        var bad = Assert.Throws<BadInputException>(() => JudgeFactory.Create(new JudgeSettings { Kind = JudgeKind.Vlm, Endpoint = "ftp://x", Model = "m" }, null));
        Assert.Contains("judge.endpoint", bad.Message, StringComparison.Ordinal);
    }
}
