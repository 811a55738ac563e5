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

    /// <summary>A pool of endpoints serving the same model (instead of <see cref="Endpoint"/>, not with it); requests go to the one with the fewest outstanding.</summary>
    [JsonPropertyName("endpoints")] public IReadOnlyList<string>? Endpoints { get; init; }

    /// <summary>A failing pool endpoint stays out of rotation this long at first, doubling per failed probe up to <see cref="EndpointCooldownMaxSeconds"/>.</summary>
    [JsonPropertyName("endpoint_cooldown_s")] public double EndpointCooldownSeconds { get; init; } = 5;
    [JsonPropertyName("endpoint_cooldown_max_s")] public double EndpointCooldownMaxSeconds { get; init; } = 300;
    [JsonPropertyName("model")] public string? Model { get; init; }

    /// <summary>Name of the environment variable holding the API key (never the key itself).</summary>
    [JsonPropertyName("api_key_env")] public string? ApiKeyEnv { get; init; }
    /// <summary>Requests in flight at once per endpoint.</summary>
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
        { Endpoint: not null, Endpoints: not null } => "judge.endpoint and judge.endpoints are both set; give one endpoint or the list of a pool",
        { Endpoints.Count: 0 } => "judge.endpoints is empty",
        { Kind: JudgeKind.Vlm } when (string.IsNullOrWhiteSpace(Endpoint) && Endpoints is null) || string.IsNullOrWhiteSpace(Model) => "judge.kind = \"vlm\" needs judge.endpoint (or judge.endpoints) and judge.model",
        { MaxConcurrency: < 1 } => "judge.max_concurrency must be at least 1",
        _ when !(EndpointCooldownSeconds > 0) || !double.IsFinite(EndpointCooldownSeconds) => "judge.endpoint_cooldown_s must be a positive number of seconds",
        _ when !(EndpointCooldownMaxSeconds >= EndpointCooldownSeconds) || !double.IsFinite(EndpointCooldownMaxSeconds) => "judge.endpoint_cooldown_max_s must be at least judge.endpoint_cooldown_s",
        _ => null,
    };

    /// <summary>The configured endpoints: <see cref="Endpoints"/>, or <see cref="Endpoint"/> alone.</summary>
    [JsonIgnore]
    public IReadOnlyList<string> AllEndpoints => Endpoints ?? (Endpoint is null ? [] : [Endpoint]);
}
