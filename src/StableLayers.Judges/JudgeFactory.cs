using StableLayers.Core;

namespace StableLayers.Judges;

/// <summary>Builds the configured judge: the offline rubric judge, or a VLM judge with an on-disk cache.</summary>
public static class JudgeFactory
{
    /// <param name="settings">What to build.</param>
    /// <param name="cacheDir">Where VLM judgements are cached (ignored by the rubric judge; null = no cache).</param>
    public static IJudge Create(JudgeSettings settings, string? cacheDir)
    {
        ArgumentNullException.ThrowIfNull(settings);
        switch (settings.Kind)
        {
            case JudgeKind.Rubric:
                return new Rubric.RubricJudge(new JudgeOptions { Calibrate = settings.Calibrate, Weights = settings.Weights });

            case JudgeKind.Vlm:
                if (!Uri.TryCreate(settings.Endpoint, UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https"))
                {
                    throw new BadInputException("judge.endpoint", $"'{settings.Endpoint}' is not an http(s) URL");
                }

                var options = new Vlm.VlmJudgeOptions
                {
                    Endpoint = endpoint,
                    Model = settings.Model ?? throw new BadInputException("judge.model", "a VLM judge needs a model name"),
                    ApiKeyEnv = settings.ApiKeyEnv ?? new Vlm.VlmJudgeOptions().ApiKeyEnv,
                    MaxConcurrency = settings.MaxConcurrency,
                    MaxRetries = settings.MaxRetries,
                    Timeout = TimeSpan.FromSeconds(settings.TimeoutSeconds),
                    Calibrate = settings.Calibrate,
                    Weights = settings.Weights,
                    UseJsonSchema = settings.UseJsonSchema,
                    IncludeRecomposite = settings.IncludeRecomposite,
                    PricePerMillionIn = settings.PriceInPerMillion,
                    PricePerMillionOut = settings.PriceOutPerMillion,
                };
                return new Vlm.VlmJudge(options, cacheDir is null ? null : new Vlm.JudgementCache(cacheDir));

            default:
                throw new ArgumentOutOfRangeException(nameof(settings), settings.Kind, "unknown judge kind");
        }
    }
}
