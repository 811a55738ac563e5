using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace StableLayers.Judges.Vlm;

/// <summary>A reply that could not be parsed or failed validation (retried, then recorded as a failed judgement).</summary>
public sealed class VlmReplyException : Exception
{
    public VlmReplyException()
    {
    }

    public VlmReplyException(string message)
        : base(message)
    {
    }

    public VlmReplyException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>
/// Tolerant parsing of model replies: JSON may come inside code fences or with prose around it, and
/// numbers may be strings ("4"). What is parsed is validated strictly: every criterion present and in
/// range, and (phase 2) every expected label exactly once and no other.
/// </summary>
public static class VlmReplyParser
{
    /// <summary>The first complete JSON object in <paramref name="text"/> that parses, or null.</summary>
    public static JsonObject? ExtractObject(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        for (int start = text.IndexOf('{', StringComparison.Ordinal); start >= 0; start = text.IndexOf('{', start + 1))
        {
            int end = MatchingBrace(text, start);
            if (end < 0)
            {
                continue;
            }

            try
            {
                if (JsonNode.Parse(text.AsSpan(start, end - start + 1).ToString()) is JsonObject o)
                {
                    return o;
                }
            }
            catch (JsonException)
            {
            }
        }

        return null;
    }

    /// <summary>Phase 1: five integers 0..5 in <see cref="Criteria.Keys"/> order.</summary>
    public static int[] ParseRubric(string text)
    {
        JsonObject o = ExtractObject(text) ?? throw new VlmReplyException($"no JSON object in the reply: {Snippet(text)}");
        var scores = new int[Criteria.Keys.Count];
        for (int i = 0; i < scores.Length; i++)
        {
            double v = ReadCriterion(o, Criteria.Keys[i], 5);
            if (Math.Abs(v - Math.Round(v)) > 1e-9)
            {
                throw new VlmReplyException($"{Criteria.Keys[i]} must be an integer 0-5, got {v.ToString(CultureInfo.InvariantCulture)}");
            }

            scores[i] = (int)Math.Round(v);
        }

        return scores;
    }

    /// <summary>Phase 2: for each expected label (exactly once), five numbers 0..100 in <see cref="Criteria.Keys"/> order.</summary>
    public static IReadOnlyDictionary<string, double[]> ParseGrid(string text, IReadOnlyCollection<string> expectedLabels)
    {
        ArgumentNullException.ThrowIfNull(expectedLabels);
        JsonObject o = ExtractObject(text) ?? throw new VlmReplyException($"no JSON object in the reply: {Snippet(text)}");
        if (Get(o, "candidates") is not JsonArray rows)
        {
            throw new VlmReplyException("reply has no \"candidates\" array");
        }

        var expected = new HashSet<string>(expectedLabels, StringComparer.Ordinal);
        var result = new Dictionary<string, double[]>(StringComparer.Ordinal);
        foreach (JsonNode? row in rows)
        {
            if (row is not JsonObject r)
            {
                throw new VlmReplyException("a \"candidates\" entry is not an object");
            }

            string label = (Get(r, "label") is JsonValue lv && lv.TryGetValue(out string? ls) ? ls : null)?.Trim().ToUpperInvariant()
                ?? throw new VlmReplyException("a \"candidates\" entry has no string label");
            if (!expected.Contains(label))
            {
                throw new VlmReplyException($"unknown label {label} (expected {string.Join(", ", expectedLabels)})");
            }

            if (result.ContainsKey(label))
            {
                throw new VlmReplyException($"label {label} appears twice");
            }

            result[label] = Criteria.Keys.Select(k => ReadCriterion(r, k, 100)).ToArray();
        }

        string[] missing = expectedLabels.Where(l => !result.ContainsKey(l)).ToArray();
        if (missing.Length > 0)
        {
            throw new VlmReplyException($"labels missing from the reply: {string.Join(", ", missing)}");
        }

        return result;
    }

    private static double ReadCriterion(JsonObject o, string key, double max)
    {
        JsonNode? node = Get(o, key);
        double? v = node is JsonValue jv ? Number(jv) : null;
        if (v is null)
        {
            throw new VlmReplyException($"{key} is missing or not a number");
        }

        if (!double.IsFinite(v.Value) || v < 0 || v > max)
        {
            throw new VlmReplyException($"{key} = {v.Value.ToString(CultureInfo.InvariantCulture)} is outside 0-{max.ToString(CultureInfo.InvariantCulture)}");
        }

        return v.Value;
    }

    private static double? Number(JsonValue v)
    {
        if (v.TryGetValue(out double d))
        {
            return d;
        }

        if (v.TryGetValue(out string? s) && double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double p))
        {
            return p;
        }

        return null;
    }

    private static JsonNode? Get(JsonObject o, string key)
    {
        if (o.TryGetPropertyValue(key, out JsonNode? exact))
        {
            return exact;
        }

        foreach (var (k, v) in o)
        {
            if (string.Equals(k.Trim(), key, StringComparison.OrdinalIgnoreCase))
            {
                return v;
            }
        }

        return null;
    }

    private static int MatchingBrace(string s, int start)
    {
        int depth = 0;
        bool inString = false;
        for (int i = start; i < s.Length; i++)
        {
            char c = s[i];
            if (inString)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '"')
                {
                    inString = false;
                }

                continue;
            }

            switch (c)
            {
                case '"':
                    inString = true;
                    break;
                case '{' or '[':
                    depth++;
                    break;
                case '}' or ']':
                    depth--;
                    if (depth == 0)
                    {
                        return c == '}' ? i : -1;
                    }

                    break;
            }
        }

        return -1;
    }

    internal static string Snippet(string text) => text.Length <= 120 ? text : string.Concat(text.AsSpan(0, 120), "...");
}
