using System.Text.Json.Serialization;
using StableLayers.Core;

namespace StableLayers.Judges;

/// <summary>Which judge scores candidates.</summary>
[JsonConverter(typeof(SettingEnumConverter<JudgeKind>))]
public enum JudgeKind
{
    /// <summary>The offline rubric judge (deterministic, no network).</summary>
    Rubric,

    /// <summary>A VLM behind any OpenAI-compatible endpoint.</summary>
    Vlm,
}

/// <summary>
/// A judge's settings: the <c>[judge]</c> section of a training config, or the judge options of <c>score</c> and
/// <c>judge-agreement</c>. <see cref="JudgeFactory"/> builds the judge from them, the same way for every caller.
/// </summary>
public sealed record JudgeSettings
{
    /// <summary>rubric (offline, default) or vlm.</summary>
    [JsonPropertyName("kind")] public JudgeKind Kind { get; init; } = JudgeKind.Rubric;
    [JsonPropertyName("calibrate")] public bool Calibrate { get; init; } = true;

    /// <summary>Reward = weighted mean of the five criteria (missing keys weigh 1).</summary>
    [JsonPropertyName("weights")] public RewardWeights Weights { get; init; } = RewardWeights.Equal;
    [JsonPropertyName("endpoint")] public string? Endpoint { get; init; }
    [JsonPropertyName("model")] public string? Model { get; init; }

    /// <summary>Name of the environment variable holding the API key (never the key itself).</summary>
    [JsonPropertyName("api_key_env")] public string? ApiKeyEnv { get; init; }
    [JsonPropertyName("max_concurrency")] public int MaxConcurrency { get; init; } = 8;
    [JsonPropertyName("max_retries")] public int MaxRetries { get; init; } = 4;

    /// <summary>Ask for JSON-schema structured output (turn off for servers that reject response_format json_schema).</summary>
    [JsonPropertyName("use_json_schema")] public bool UseJsonSchema { get; init; } = true;
    [JsonPropertyName("include_recomposite")] public bool IncludeRecomposite { get; init; }
    [JsonPropertyName("timeout_s")] public double TimeoutSeconds { get; init; } = 120;
    [JsonPropertyName("price_in_per_million")] public double? PriceInPerMillion { get; init; }
    [JsonPropertyName("price_out_per_million")] public double? PriceOutPerMillion { get; init; }

    /// <summary>The first thing wrong with the settings (keys named as in a config's [judge] section), or null.</summary>
    public string? Problem() => this switch
    {
        { Kind: JudgeKind.Vlm } when string.IsNullOrWhiteSpace(Endpoint) || string.IsNullOrWhiteSpace(Model) => "judge.kind = \"vlm\" needs judge.endpoint and judge.model",
        _ => null,
    };
}
