using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using StableLayers.Judges;
using StableLayers.Server.Jobs;

namespace StableLayers.Server.Api;

/// <summary>A job as the API shows it (<c>GET /api/jobs/{id}</c>); README "HTTP API" documents every field.</summary>
public sealed record JobView(
    string Id,
    string Status,
    [property: JsonConverter(typeof(LayersFieldConverter))] int? Layers,
    long Seed,
    int Steps,
    InputView Input,
    int? QueuePosition,
    ProgressView? Progress,
    DateTimeOffset Created,
    DateTimeOffset? Started,
    DateTimeOffset? Finished,
    double? Seconds,
    string? Error,
    ResultView? Result)
{
    public static JobView Of(Job job, JobQueue queue)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(queue);
        string root = $"/api/jobs/{job.Id}";
        var outcome = job.Outcome;
        ResultView? result = null;
        if (job.Status == JobStatus.Done && outcome is not null)
        {
            var stack = outcome.Stack;
            result = new ResultView(
                stack.Width,
                stack.Height,
                stack.Layers.Select((l, i) => new LayerView(i, l.Name, $"{root}/layers/{i}.png")).ToList(),
                $"{root}/composite.png",
                new ScoresView(outcome.Scores.Judge, outcome.Scores.Phase1, outcome.Scores.Calibrated, outcome.Scores.Reward, outcome.Scores.Error, Criteria.Keys),
                outcome.Auto,
                new DownloadsView($"{root}/layers.psd", $"{root}/layers.ora", $"{root}/layers.zip"));
        }

        var end = job.Finished ?? (job.Started is null ? null : queue.Time.GetUtcNow());
        return new JobView(
            job.Id,
            job.Status.ToString().ToLowerInvariant(),
            job.Settings.Layers,
            job.Settings.Seed,
            job.Settings.Steps,
            new InputView(job.DisplayName, job.Format.ToString().ToLowerInvariant(), job.Input.Width, job.Input.Height, $"{root}/input.png"),
            job.Status == JobStatus.Queued ? queue.QueuePosition(job) : null,
            job.Progress is { } p ? new ProgressView(p.Phase, p.Done, p.Total) : null,
            job.Created,
            job.Started,
            job.Finished,
            job.Started is { } s && end is { } e ? Math.Round((e - s).TotalSeconds, 3) : null,
            job.Error,
            result);
    }
}

public sealed record InputView(string Name, string Format, int Width, int Height, string Url);

public sealed record ProgressView(string Phase, int Done, int Total);

public sealed record LayerView(int Index, string Name, string Url);

public sealed record ScoresView(string Judge, CriterionScores? Phase1, CriterionScores? Calibrated, double? Reward, string? Error, IReadOnlyList<string> Criteria);

public sealed record DownloadsView(string Psd, string Ora, string Zip);

public sealed record ResultView(int Width, int Height, IReadOnlyList<LayerView> Layers, string Composite, ScoresView Scores, AutoChoice? Auto, DownloadsView Downloads);

/// <summary><c>GET /api/info</c>: the model, the judge, the limits and how full the queue is.</summary>
public sealed record InfoView(
    string Model,
    string Judge,
    int MinLayers,
    int MaxLayers,
    bool Auto,
    int MaxSteps,
    long MaxUploadBytes,
    long MaxUploadPixels,
    double HeartbeatSeconds,
    IReadOnlyList<string> Formats,
    QueueStats Queue);

/// <summary>Writes the requested layer count as a number, or "auto".</summary>
public sealed class LayersFieldConverter : JsonConverter<int?>
{
    public override bool HandleNull => true;

    public override int? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.Number ? reader.GetInt32() : JobSettings.ParseLayers(reader.GetString());

    public override void Write(Utf8JsonWriter writer, int? value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        if (value is int n)
        {
            writer.WriteNumberValue(n);
        }
        else
        {
            writer.WriteStringValue(JobSettings.AutoText);
        }
    }
}

internal static class Json
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.Strict,
    };

    public static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture);
}
