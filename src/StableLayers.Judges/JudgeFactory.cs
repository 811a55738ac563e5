using StableLayers.Core;

namespace StableLayers.Judges;

/// <summary>Builds the configured judge: the offline rubric judge, or a VLM judge with an on-disk cache.</summary>
public static class JudgeFactory
{
    /// <param name="settings">What to build.</param>
    /// <param name="cacheDir">Where VLM judgements are cached (ignored by the rubric judge; null = no cache).</param>
    /// <param name="log">Gets a line when an endpoint of a judge pool goes out of rotation or comes back (null = not logged).</param>
    public static IJudge Create(JudgeSettings settings, string? cacheDir, TextWriter? log = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.Problem() is { } problem)
        {
            throw new BadInputException("[judge]", problem);
        }

        switch (settings.Kind)
        {
            case JudgeKind.Rubric:
                return new Rubric.RubricJudge(new JudgeOptions { Calibrate = settings.Calibrate, Weights = settings.Weights });

            case JudgeKind.Vlm:
                string key = settings.Endpoints is null ? "judge.endpoint" : "judge.endpoints";
                var endpoints = new List<Uri>();
                foreach (string e in settings.AllEndpoints)
                {
                    if (!Uri.TryCreate(e, UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https"))
                    {
                        throw new BadInputException(key, $"'{e}' is not an http(s) URL");
                    }

                    if (endpoints.Any(x => Vlm.VlmJudge.PublicEndpoint(x) == Vlm.VlmJudge.PublicEndpoint(endpoint)))
                    {
                        throw new BadInputException(key, $"'{e}' is listed twice");
                    }

                    endpoints.Add(endpoint);
                }

                var options = new Vlm.VlmJudgeOptions
                {
                    Endpoint = endpoints[0],
                    Endpoints = endpoints.Count > 1 ? endpoints : [],
                    EndpointCooldown = TimeSpan.FromSeconds(settings.EndpointCooldownSeconds),
                    EndpointCooldownMax = TimeSpan.FromSeconds(settings.EndpointCooldownMaxSeconds),
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
                var sync = log is null ? null : TextWriter.Synchronized(log);
                return new Vlm.VlmJudge(options, cacheDir is null ? null : new Vlm.JudgementCache(cacheDir), sync is null ? null : sync.WriteLine);

            default:
                throw new ArgumentOutOfRangeException(nameof(settings), settings.Kind, "unknown judge kind");
        }
    }
}
