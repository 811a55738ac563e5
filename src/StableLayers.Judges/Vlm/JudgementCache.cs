using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using StableLayers.Core;

namespace StableLayers.Judges.Vlm;

/// <summary>One cached VLM judgement: what was asked (never the API key) and the validated answer.</summary>
public sealed record CachedJudgement
{
    [JsonPropertyName("key")]
    public required string Key { get; init; }

    /// <summary>"rubric" (phase 1, one candidate), "grid" (phase 2, one chunk) or "caption".</summary>
    [JsonPropertyName("kind")]
    public required string Kind { get; init; }

    [JsonPropertyName("model")]
    public required string Model { get; init; }

    [JsonPropertyName("endpoint")]
    public required string Endpoint { get; init; }

    [JsonPropertyName("prompt")]
    public required string Prompt { get; init; }

    /// <summary>Phase 1: the five criteria on the 0..5 scale (integers, or expected values in logit mode).</summary>
    [JsonPropertyName("scores")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double[]? Scores { get; init; }

    /// <summary>Phase 2: label -> five criteria on the 0..100 scale.</summary>
    [JsonPropertyName("grid")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Dictionary<string, double[]>? Grid { get; init; }

    /// <summary>An automatic caption (kind "caption", see Captions.VlmCaptioner).</summary>
    [JsonPropertyName("caption")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Caption { get; init; }

    [JsonPropertyName("tokens_in")]
    public long TokensIn { get; init; }

    [JsonPropertyName("tokens_out")]
    public long TokensOut { get; init; }

    [JsonPropertyName("created_utc")]
    public DateTimeOffset CreatedUtc { get; init; }
}

/// <summary>
/// Judgements on disk, one JSON file per key (DIR/ab/abcdef....json). The key is the SHA-256 of
/// everything that decides the answer: prompt version and template hash, model, endpoint, settings,
/// the rendered prompt text and the SHA-256 of every image sent. Writes are atomic (temp file +
/// rename), so concurrent writers of one key leave one complete file; an entry that does not parse
/// or validate is ignored (counted in <see cref="CorruptEntries"/>) and rewritten by the next judgement.
/// </summary>
public sealed class JudgementCache
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
    private int _corrupt;

    public JudgementCache(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        Directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    public int CorruptEntries => Volatile.Read(ref _corrupt);

    /// <summary>SHA-256 (hex) of the parts, each length-prefixed so no two part lists collide.</summary>
    public static string Key(IEnumerable<string> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        var sb = new StringBuilder();
        foreach (string p in parts)
        {
            sb.Append(p.Length).Append(':').Append(p).Append('\n');
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())));
    }

    public static string HashBytes(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    public string PathFor(string key) => Path.Combine(Directory, key[..2], key + ".json");

    /// <summary>The entry for <paramref name="key"/> when it exists, parses, matches the key and passes <paramref name="valid"/>.</summary>
    public CachedJudgement? TryRead(string key, Func<CachedJudgement, bool> valid)
    {
        ArgumentNullException.ThrowIfNull(valid);
        string path = PathFor(key);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            var entry = JsonSerializer.Deserialize<CachedJudgement>(File.ReadAllBytes(path), Json);
            if (entry is not null && entry.Key == key && valid(entry))
            {
                return entry;
            }
        }
        catch (JsonException)
        {
        }
        catch (IOException)
        {
            return null;
        }

        Interlocked.Increment(ref _corrupt);
        return null;
    }

    public void Write(CachedJudgement entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        AtomicFile.WriteAllBytes(PathFor(entry.Key), JsonSerializer.SerializeToUtf8Bytes(entry, Json));
    }
}
