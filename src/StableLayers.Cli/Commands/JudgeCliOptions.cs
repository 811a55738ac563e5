using System.CommandLine;
using StableLayers.Core;
using StableLayers.Judges;

namespace StableLayers.Cli.Commands;

/// <summary>
/// The judge options shared by <c>score</c> and <c>judge-agreement</c>. They fill a <see cref="JudgeSettings"/> and the
/// judge is built by <see cref="JudgeFactory"/> (both in StableLayers.Judges), exactly as <c>train</c> builds it from its config.
/// </summary>
public sealed class JudgeCliOptions
{
    private readonly Option<string?> _judge = new("--judge") { Description = "rubric (offline, deterministic) or vlm (OpenAI-compatible chat model); default: vlm when --endpoint is given, else rubric" };
    private readonly Option<string[]> _endpoint = new("--endpoint")
    {
        Description = "VLM base URL including the version path, e.g. http://127.0.0.1:8000/v1; repeat it (or separate with commas) for a pool of servers of the same model",
        AllowMultipleArgumentsPerToken = false,
    };
    private readonly Option<string?> _model = new("--model") { Description = "VLM model name, e.g. Qwen/Qwen2.5-VL-7B-Instruct" };
    private readonly Option<string?> _apiKeyEnv = new("--api-key-env") { Description = "Name of the environment variable holding the API key (default VLM_API_KEY; the key itself is never written anywhere)" };
    private readonly Option<bool> _calibrate = new("--calibrate") { Description = "Phase 2 within-group calibration (true|false)", DefaultValueFactory = _ => true };
    private readonly Option<DirectoryInfo?> _cache = new("--cache") { Description = "Folder caching VLM judgements (re-runs never pay twice); default: no cache" };
    private readonly Option<int> _maxRetries = new("--max-retries") { Description = "VLM retries per request (429/5xx/timeouts/invalid replies)", DefaultValueFactory = _ => 4 };
    private readonly Option<double> _timeout = new("--timeout") { Description = "VLM per-request timeout in seconds", DefaultValueFactory = _ => 120 };
    private readonly Option<bool> _jsonSchema = new("--json-schema") { Description = "Ask the VLM for response_format json_schema (false for servers without it)", DefaultValueFactory = _ => true };
    private readonly Option<double?> _priceIn = new("--price-in") { Description = "Price per million input tokens (adds a cost to the report)" };
    private readonly Option<double?> _priceOut = new("--price-out") { Description = "Price per million output tokens" };

    public JudgeCliOptions()
    {
        _judge.AcceptOnlyFromAmong([.. SettingEnum.Names<JudgeKind>()]);
    }

    public void AddTo(Command command)
    {
        ArgumentNullException.ThrowIfNull(command);
        foreach (Option o in new Option[] { _judge, _endpoint, _model, _apiKeyEnv, _calibrate, _cache, _maxRetries, _timeout, _jsonSchema, _priceIn, _priceOut })
        {
            command.Options.Add(o);
        }
    }

    /// <summary>True when the command line names a judge (<c>--judge</c> or <c>--endpoint</c>), for commands where judging is optional.</summary>
    public bool Requested(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        return parse.GetValue(_judge) is not null || parse.GetValue(_endpoint) is { Length: > 0 };
    }

    /// <summary>The judge settings from the command line; problems are <see cref="BadInputException"/>s naming the option.</summary>
    public JudgeSettings Section(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        string[]? endpoints = parse.GetValue(_endpoint) is { Length: > 0 } given
            ? given.SelectMany(e => e.Split(',', StringSplitOptions.TrimEntries)).ToArray()
            : null;
        string? endpoint = endpoints?[0];
        var kind = parse.GetValue(_judge) is { } name ? SettingEnum.Parse<JudgeKind>(name, "--judge") : endpoint is null ? JudgeKind.Rubric : JudgeKind.Vlm;
        string? model = parse.GetValue(_model);
        if (kind == JudgeKind.Rubric && (endpoint is not null || model is not null))
        {
            throw new BadInputException(endpoint is not null ? "--endpoint" : "--model", "only used by --judge vlm");
        }

        if (kind == JudgeKind.Vlm)
        {
            if (endpoints is null)
            {
                throw new BadInputException("--endpoint", "--judge vlm needs an endpoint URL");
            }

            foreach (string e in endpoints)
            {
                if (!Uri.TryCreate(e, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                {
                    throw new BadInputException("--endpoint", string.IsNullOrEmpty(e) ? "an empty URL in the list" : $"'{e}' is not an http(s) URL");
                }
            }

            if (endpoints.Distinct(StringComparer.Ordinal).Count() != endpoints.Length)
            {
                throw new BadInputException("--endpoint", "an endpoint is given twice");
            }

            if (string.IsNullOrWhiteSpace(model))
            {
                throw new BadInputException("--model", "--judge vlm needs a model name");
            }
        }

        int retries = parse.GetValue(_maxRetries);
        if (retries < 0)
        {
            throw new BadInputException("--max-retries", $"must be >= 0, got {retries}");
        }

        double timeout = parse.GetValue(_timeout);
        if (!(timeout > 0) || !double.IsFinite(timeout))
        {
            throw new BadInputException("--timeout", $"must be a positive number of seconds, got {timeout}");
        }

        string? keyEnv = parse.GetValue(_apiKeyEnv);
        if (keyEnv is not null && (keyEnv.Length == 0 || keyEnv.Any(c => !(char.IsAsciiLetterOrDigit(c) || c == '_'))))
        {
            // A key pasted here by mistake must not end up in error messages or reports.
            throw new BadInputException("--api-key-env", "expects the NAME of an environment variable (letters, digits, _), not the key");
        }

        return new JudgeSettings
        {
            Kind = kind,
            Endpoint = endpoints is { Length: 1 } ? endpoint : null,
            Endpoints = endpoints is { Length: > 1 } ? endpoints : null,
            Model = model,
            ApiKeyEnv = keyEnv,
            Calibrate = parse.GetValue(_calibrate),
            MaxRetries = retries,
            TimeoutSeconds = timeout,
            UseJsonSchema = parse.GetValue(_jsonSchema),
            PriceInPerMillion = parse.GetValue(_priceIn),
            PriceOutPerMillion = parse.GetValue(_priceOut),
        };
    }

    /// <summary>The judge (dispose it when it is <see cref="IDisposable"/>).</summary>
    public IJudge Create(ParseResult parse, out JudgeSettings section)
    {
        section = Section(parse);
        return JudgeFactory.Create(section, parse.GetValue(_cache)?.FullName);
    }
}
