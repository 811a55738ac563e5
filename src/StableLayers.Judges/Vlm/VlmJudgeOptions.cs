namespace StableLayers.Judges.Vlm;

/// <summary>
/// Settings of <see cref="VlmJudge"/>. The API key itself is never part of the options: only the
/// name of the environment variable that holds it (<see cref="ApiKeyEnv"/>), so options can be
/// written to run folders and reports safely.
/// </summary>
public sealed record VlmJudgeOptions
{
    /// <summary>Base URL of the OpenAI-compatible API, including the version path (e.g. http://127.0.0.1:8000/v1).</summary>
    public Uri Endpoint { get; init; } = new("http://127.0.0.1:8000/v1");

    /// <summary>
    /// A pool of endpoints serving the same <see cref="Model"/> (see <see cref="EndpointPool"/>); when empty, the pool is
    /// <see cref="Endpoint"/> alone. Requests go to the in-rotation endpoint with the fewest outstanding.
    /// </summary>
    public IReadOnlyList<Uri> Endpoints { get; init; } = [];

    /// <summary>The endpoints in use: <see cref="Endpoints"/>, or <see cref="Endpoint"/> when that is empty.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public IReadOnlyList<Uri> PoolEndpoints => Endpoints.Count > 0 ? Endpoints : [Endpoint];

    /// <summary>How long a failing endpoint of a pool stays out of rotation at first; doubles with every failed probe up to <see cref="EndpointCooldownMax"/>.</summary>
    public TimeSpan EndpointCooldown { get; init; } = TimeSpan.FromSeconds(5);

    public TimeSpan EndpointCooldownMax { get; init; } = TimeSpan.FromMinutes(5);

    public string Model { get; init; } = "Qwen/Qwen2.5-VL-7B-Instruct";

    /// <summary>Environment variable holding the API key; when it is unset or empty a placeholder key is sent (local servers ignore it).</summary>
    public string ApiKeyEnv { get; init; } = "VLM_API_KEY";

    /// <summary>Requests in flight at once per endpoint (a pool of n endpoints has up to n times this in flight), shared by every group this judge instance scores.</summary>
    public int MaxConcurrency { get; init; } = 8;

    /// <summary>Per-request (per-attempt) timeout.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Retries after the first attempt (for HTTP 408/429/5xx, timeouts, transport errors and invalid replies).</summary>
    public int MaxRetries { get; init; } = 4;

    /// <summary>First backoff delay; attempt k waits about RetryBaseDelay * 2^k (jittered, capped at <see cref="RetryMaxDelay"/>).</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Upper bound on how long a server's Retry-After is honoured.</summary>
    public TimeSpan MaxRetryAfter { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Images one request may carry. Phase 1 sends the input plus every layer (plus the recomposite); above the limit the layers are tiled into one strip image.</summary>
    public int MaxImagesPerRequest { get; init; } = 16;

    /// <summary>Largest image sent in phase 1 (width x height); larger ones are downscaled, keeping the aspect ratio.</summary>
    public long MaxImagePixels { get; init; } = 1024 * 1024;

    /// <summary>Side of one layer cell in the calibration grid.</summary>
    public int GridCellSize { get; init; } = 256;

    /// <summary>Largest calibration grid image (width x height); bigger groups are split into chunks sharing one anchor row.</summary>
    public long MaxGridPixels { get; init; } = 2048L * 2048L;

    /// <summary>Most candidate rows in one grid (anchor included), whatever the pixel budget.</summary>
    public int MaxGridRows { get; init; } = 8;

    /// <summary>Send the recomposited candidate too in phase 1.</summary>
    public bool IncludeRecomposite { get; init; }

    /// <summary>Phase 2 grid calibration.</summary>
    public bool Calibrate { get; init; } = true;

    public RewardWeights Weights { get; init; } = RewardWeights.Equal;

    /// <summary>Ask for response_format json_schema; servers without it still get the instructions in the prompt and a tolerant parser.</summary>
    public bool UseJsonSchema { get; init; } = true;

    public int Seed { get; init; } = 1234;

    public int MaxOutputTokens { get; init; } = 1024;

    /// <summary>Prices per million tokens (for the cost line in run totals; null = unknown).</summary>
    public double? PricePerMillionIn { get; init; }

    public double? PricePerMillionOut { get; init; }

    /// <summary>
    /// Phase 1 asks for top logprobs; where the server returns them each criterion becomes the expected
    /// score sum_k k*p(k) over the digit tokens 0..5 (continuous, from one call). Falls back to the integer when absent.
    /// </summary>
    public bool LogitMode { get; init; }

    public int TopLogprobs { get; init; } = 10;

    /// <summary>Runtime settings that change what a reply means; part of every cache key.</summary>
    internal string CacheSettings =>
        $"seed={Seed};maxout={MaxOutputTokens};schema={UseJsonSchema};recomp={IncludeRecomposite};maxpx={MaxImagePixels};maximg={MaxImagesPerRequest};" +
        $"cell={GridCellSize};gridpx={MaxGridPixels};rows={MaxGridRows};logit={LogitMode};top={TopLogprobs}";

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Model))
        {
            throw new ArgumentException("VLM judge: a model name is required");
        }

        if (PoolEndpoints.FirstOrDefault(e => e is null || !e.IsAbsoluteUri) is { } bad)
        {
            throw new ArgumentException($"VLM judge: endpoint must be an absolute URL, got '{bad}'");
        }

        if (PoolEndpoints.Select(VlmJudge.PublicEndpoint).Distinct().Count() != PoolEndpoints.Count)
        {
            throw new ArgumentException("VLM judge: an endpoint is listed twice");
        }

        if (EndpointCooldown <= TimeSpan.Zero || EndpointCooldownMax < EndpointCooldown)
        {
            throw new ArgumentException("VLM judge: EndpointCooldown must be positive and EndpointCooldownMax at least EndpointCooldown");
        }

        if (MaxConcurrency < 1 || MaxRetries < 0 || MaxImagesPerRequest < 2 || GridCellSize < 16 || MaxGridRows < 2 || MaxImagePixels < 64 * 64)
        {
            throw new ArgumentException("VLM judge: MaxConcurrency >= 1, MaxRetries >= 0, MaxImagesPerRequest >= 2, GridCellSize >= 16, MaxGridRows >= 2 and MaxImagePixels >= 4096 are required");
        }

        if (Timeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("VLM judge: Timeout must be positive");
        }
    }
}
