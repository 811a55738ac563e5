using System.CommandLine;
using StableLayers.Core;
using StableLayers.Judges.Captions;
using StableLayers.Judges.Vlm;

namespace StableLayers.Cli.Commands;

/// <summary>
/// <c>--caption auto</c> and its endpoint options: with no prompt, the released model's pipeline captions the image
/// with a VLM first (<see cref="VlmCaptioner"/>). Off by default, so offline use and the tiny model are unchanged.
/// </summary>
public sealed class CaptionCliOptions
{
    private readonly Option<string> _mode = new("--caption") { Description = "off, or auto: an image decomposed without a prompt gets a caption from the VLM at --caption-endpoint first, as the released pipeline captions with Qwen2.5-VL (released model layout only)", DefaultValueFactory = _ => "off" };
    private readonly Option<string?> _endpoint = new("--caption-endpoint") { Description = "OpenAI-compatible base URL including the version path, e.g. http://127.0.0.1:8000/v1" };
    private readonly Option<string?> _model = new("--caption-model") { Description = "VLM model name, e.g. Qwen/Qwen2.5-VL-7B-Instruct" };
    private readonly Option<string?> _apiKeyEnv = new("--caption-api-key-env") { Description = "Name of the environment variable holding the API key (default VLM_API_KEY)" };
    private readonly Option<string> _language = new("--caption-language") { Description = "zh or en: the reference pipeline's Chinese (its default) or English caption instruction", DefaultValueFactory = _ => "zh" };
    private readonly Option<double> _timeout = new("--caption-timeout") { Description = "Per-request timeout in seconds", DefaultValueFactory = _ => 120 };
    private readonly Option<int> _retries = new("--caption-retries") { Description = "Retries per caption (429/5xx/timeouts/replies without text)", DefaultValueFactory = _ => 2 };
    private readonly Option<DirectoryInfo?> _cache = new("--caption-cache") { Description = "Folder caching captions per image (default: stable-layers/captions in the user's local data folder)" };

    public CaptionCliOptions()
    {
        _mode.AcceptOnlyFromAmong("off", "auto");
        _language.AcceptOnlyFromAmong("zh", "en");
    }

    public void AddTo(Command command)
    {
        ArgumentNullException.ThrowIfNull(command);
        foreach (Option o in new Option[] { _mode, _endpoint, _model, _apiKeyEnv, _language, _timeout, _retries, _cache })
        {
            command.Options.Add(o);
        }
    }

    /// <summary>The captioner settings, or null with <c>--caption off</c>; problems are <see cref="BadInputException"/>s naming the option.</summary>
    public (VlmCaptionerOptions Options, string CacheDir)? Resolve(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        string? endpoint = parse.GetValue(_endpoint);
        string? model = parse.GetValue(_model);
        if (parse.GetValue(_mode) != "auto")
        {
            return endpoint is not null || model is not null
                ? throw new BadInputException(endpoint is not null ? "--caption-endpoint" : "--caption-model", "only used with --caption auto")
                : null;
        }

        if (string.IsNullOrWhiteSpace(endpoint))
        {
            throw new BadInputException("--caption-endpoint", "--caption auto needs the VLM's URL");
        }

        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            throw new BadInputException("--caption-endpoint", "not an http(s) URL");
        }

        if (string.IsNullOrWhiteSpace(model))
        {
            throw new BadInputException("--caption-model", "--caption auto needs a model name");
        }

        double timeout = parse.GetValue(_timeout);
        if (!(timeout > 0) || !double.IsFinite(timeout))
        {
            throw new BadInputException("--caption-timeout", $"must be a positive number of seconds, got {timeout}");
        }

        int retries = parse.GetValue(_retries);
        if (retries < 0)
        {
            throw new BadInputException("--caption-retries", $"must be >= 0, got {retries}");
        }

        string? keyEnv = parse.GetValue(_apiKeyEnv);
        if (keyEnv is not null && (keyEnv.Length == 0 || keyEnv.Any(c => !(char.IsAsciiLetterOrDigit(c) || c == '_'))))
        {
            // A key pasted here by mistake must not end up in error messages.
            throw new BadInputException("--caption-api-key-env", "expects the NAME of an environment variable (letters, digits, _), not the key");
        }

        string cache = parse.GetValue(_cache)?.FullName
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "stable-layers", "captions");
        var options = new VlmCaptionerOptions
        {
            Endpoint = uri,
            Model = model,
            ApiKeyEnv = keyEnv ?? "VLM_API_KEY",
            Language = parse.GetValue(_language) == "en" ? CaptionLanguage.English : CaptionLanguage.Chinese,
            Timeout = TimeSpan.FromSeconds(timeout),
            MaxRetries = retries,
            Source = "--caption-endpoint",
        };
        return (options, cache);
    }

    /// <summary>The captioner for resolved settings (dispose it).</summary>
    public static VlmCaptioner Create((VlmCaptionerOptions Options, string CacheDir) settings) =>
        new(settings.Options, new JudgementCache(settings.CacheDir));
}
