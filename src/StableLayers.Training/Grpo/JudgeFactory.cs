using StableLayers.Core;
using StableLayers.Judges;
using StableLayers.Judges.Rubric;
using StableLayers.Judges.Vlm;

namespace StableLayers.Training.Grpo;

/// <summary>Builds the configured judge: the offline rubric judge, or a VLM judge with an on-disk cache.</summary>
public static class JudgeFactory
{
    /// <param name="cacheDir">Where VLM judgements are cached (ignored by the rubric judge; null = no cache).</param>
    public static IJudge Create(GrpoConfig.JudgeSection judge, string? cacheDir)
    {
        ArgumentNullException.ThrowIfNull(judge);
        if (judge.Kind == "rubric")
        {
            return new RubricJudge(new JudgeOptions { Calibrate = judge.Calibrate, Weights = judge.Weights });
        }

        if (!Uri.TryCreate(judge.Endpoint, UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https"))
        {
            throw new BadInputException("judge.endpoint", $"'{judge.Endpoint}' is not an http(s) URL");
        }

        var options = new VlmJudgeOptions
        {
            Endpoint = endpoint,
            Model = judge.Model ?? throw new BadInputException("judge.model", "a VLM judge needs a model name"),
            ApiKeyEnv = judge.ApiKeyEnv ?? new VlmJudgeOptions().ApiKeyEnv,
            MaxConcurrency = judge.MaxConcurrency,
            MaxRetries = judge.MaxRetries,
            Timeout = TimeSpan.FromSeconds(judge.TimeoutSeconds),
            Calibrate = judge.Calibrate,
            Weights = judge.Weights,
            UseJsonSchema = judge.UseJsonSchema,
            IncludeRecomposite = judge.IncludeRecomposite,
            PricePerMillionIn = judge.PriceInPerMillion,
            PricePerMillionOut = judge.PriceOutPerMillion,
        };
        return new VlmJudge(options, cacheDir is null ? null : new JudgementCache(cacheDir));
    }
}
