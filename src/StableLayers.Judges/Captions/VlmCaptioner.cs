using System.Globalization;
using System.Text;
using Microsoft.Extensions.AI;
using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.Judges.Vlm;

namespace StableLayers.Judges.Captions;

/// <summary>Settings of <see cref="VlmCaptioner"/>; like the judge's, the API key is only named, never held.</summary>
public sealed record VlmCaptionerOptions
{
    public required Uri Endpoint { get; init; }

    public required string Model { get; init; }

    public string ApiKeyEnv { get; init; } = "VLM_API_KEY";

    public CaptionLanguage Language { get; init; } = CaptionLanguage.Chinese;

    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(120);

    public int MaxRetries { get; init; } = 2;

    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Largest image sent (width x height); the reference captions the image at the pipeline's resolution (1024 x 1024 pixels at most).</summary>
    public long MaxImagePixels { get; init; } = 1024 * 1024;

    /// <summary>The option or config key the endpoint came from: failures name it (e.g. --caption-endpoint).</summary>
    public string Source { get; init; } = "caption endpoint";
}

/// <summary>
/// The released pipeline's automatic caption (QwenImageLayeredPipeline.get_image_caption, used when the prompt is
/// empty), asked of an OpenAI-compatible VLM instead of the local Qwen2.5-VL's generate: the reference's system turn,
/// then its English or Chinese instruction followed by the image, at most 512 new tokens, greedy; the reply is
/// stripped as the reference strips its decoded text. Captions are cached on disk per image (SHA-256 of the PNG sent,
/// plus model, endpoint and instruction), so a re-run never asks twice. A reply without any text, or only
/// chat-template tokens, is invalid and retried; when every attempt fails the caller gets a
/// <see cref="BadInputException"/> naming <see cref="VlmCaptionerOptions.Source"/> (one line, exit 2 in the CLI).
/// </summary>
public sealed class VlmCaptioner : IDisposable
{
    private const string CacheFormat = "vlm-caption-cache/1";

    /// <summary>Chat-template tokens a server may leave in a reply; the reference decodes with skip_special_tokens.</summary>
    private static readonly string[] TemplateTokens = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"];

    private readonly VlmCaptionerOptions _options;
    private readonly IChatClient _client;
    private readonly bool _ownsClient;
    private readonly JudgementCache? _cache;
    private readonly VlmCaller _caller;
    private readonly string _endpoint;
    private readonly UsageCounter _usage = new();

    public VlmCaptioner(VlmCaptionerOptions options, JudgementCache? cache = null)
        : this(options, VlmJudge.CreateChatClient(JudgeOptions(options)), cache, ownsClient: true)
    {
    }

    private VlmCaptioner(VlmCaptionerOptions options, IChatClient client, JudgementCache? cache, bool ownsClient)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _client = client;
        _ownsClient = ownsClient;
        _cache = cache;
        _caller = new VlmCaller(client, JudgeOptions(options));
        _endpoint = VlmJudge.PublicEndpoint(options.Endpoint);
    }

    /// <summary>Requests sent (each attempt counts).</summary>
    public int Requests => _usage.Snapshot().Calls;

    /// <summary>Captions answered from the cache.</summary>
    public int CacheHits { get; private set; }

    /// <summary>The caption of <paramref name="image"/> (cached or asked now).</summary>
    public async Task<string> CaptionAsync(RgbaImage image, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(image);
        byte[] png = PngCodec.Encode(VlmJudge.Downscale(image, _options.MaxImagePixels));
        string instruction = CaptionInstructions.For(_options.Language);
        string key = JudgementCache.Key([
            CacheFormat, _options.Model, _endpoint, CaptionInstructions.System, instruction,
            CaptionInstructions.MaxOutputTokens.ToString(CultureInfo.InvariantCulture), JudgementCache.HashBytes(png),
        ]);
        if (_cache?.TryRead(key, e => e.Kind == "caption" && Clean(e.Caption) is not null) is { Caption: { } cached })
        {
            CacheHits++;
            return cached;
        }

        var messages = new List<ChatMessage>
        {
            new(ChatRole.System, CaptionInstructions.System),
            new(ChatRole.User, [new TextContent(instruction), new DataContent(png, "image/png")]),
        };
        var chat = new ChatOptions { Temperature = 0, MaxOutputTokens = CaptionInstructions.MaxOutputTokens };
        var result = await _caller.CallAsync(messages, chat, Parse, [_usage], cancellationToken).ConfigureAwait(false);
        if (result.Value is not { } caption)
        {
            throw new BadInputException(_options.Source, $"no caption from {_options.Model} at {_endpoint}: {result.Error}");
        }

        _cache?.Write(new CachedJudgement
        {
            Key = key,
            Kind = "caption",
            Model = _options.Model,
            Endpoint = _endpoint,
            Prompt = _options.Language == CaptionLanguage.English ? "caption-en" : "caption-zh",
            Caption = caption,
            TokensIn = result.TokensIn,
            TokensOut = result.TokensOut,
            CreatedUtc = DateTimeOffset.UtcNow,
        });
        return caption;
    }

    /// <summary>The caption in a reply (template tokens removed, stripped), or null when nothing readable is left.</summary>
    public static string? Clean(string? reply)
    {
        if (reply is null)
        {
            return null;
        }

        var sb = new StringBuilder(reply);
        foreach (string t in TemplateTokens)
        {
            sb.Replace(t, string.Empty);
        }

        string text = sb.ToString().Trim();
        // A caption is words: a reply of only digits, punctuation or control characters is not one.
        return text.Any(char.IsLetter) && !text.Any(c => char.IsControl(c) && c is not ('\n' or '\r' or '\t')) ? text : null;
    }

    private static string Parse(ChatResponse response) =>
        Clean(response.Text) ?? throw new VlmReplyException($"not a caption: \"{Shorten(response.Text)}\"");

    private static string Shorten(string s)
    {
        string one = s.ReplaceLineEndings(" ");
        return one.Length <= 60 ? one : one[..60] + "...";
    }

    private static VlmJudgeOptions JudgeOptions(VlmCaptionerOptions o) => new()
    {
        Endpoint = o.Endpoint,
        Model = o.Model,
        ApiKeyEnv = o.ApiKeyEnv,
        Timeout = o.Timeout,
        MaxRetries = o.MaxRetries,
        RetryBaseDelay = o.RetryBaseDelay,
        MaxConcurrency = 1,
    };

    public void Dispose()
    {
        _caller.Dispose();
        if (_ownsClient)
        {
            _client.Dispose();
        }
    }
}
