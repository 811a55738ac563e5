using System.Globalization;
using StableLayers.Judges.LayerCount;

namespace StableLayers.Server.Jobs;

/// <summary>What a job was asked for. <see cref="Layers"/> null means "auto": the layer count is chosen per image as <see cref="Auto"/> says.</summary>
public sealed record JobSettings(int? Layers, long Seed, int Steps)
{
    /// <summary>How "auto" chooses (method and range); unused for a fixed layer count.</summary>
    public LayerCountSettings Auto { get; init; } = new();

    public const int MinLayers = 1;
    public const int MaxLayers = 10;
    public const string AutoText = "auto";

    public bool IsAuto => Layers is null;

    /// <summary>The layer count as the API writes it: a number, or "auto".</summary>
    public string LayersText => Layers?.ToString(CultureInfo.InvariantCulture) ?? AutoText;

    /// <summary>Parses the form field <c>layers</c>: an integer 1..10 or "auto" (absent: 4).</summary>
    public static int? ParseLayers(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return 4;
        }

        text = text.Trim();
        if (string.Equals(text, AutoText, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n < MinLayers || n > MaxLayers)
        {
            throw new ApiException(400, $"layers must be {MinLayers}..{MaxLayers} or \"auto\", got \"{Truncate(text)}\"");
        }

        return n;
    }

    public static long ParseSeed(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return 0;
        }

        if (!long.TryParse(text.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long seed))
        {
            throw new ApiException(400, $"seed must be an integer, got \"{Truncate(text)}\"");
        }

        return seed;
    }

    public static int ParseSteps(string? text, int maxSteps)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return Math.Min(20, maxSteps);
        }

        if (!int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int steps) || steps < 1 || steps > maxSteps)
        {
            throw new ApiException(400, $"steps must be 1..{maxSteps}, got \"{Truncate(text)}\"");
        }

        return steps;
    }

    /// <summary>
    /// The form fields of "auto": <c>auto_method</c> (judge or count, default judge), <c>min_layers</c> and
    /// <c>max_layers</c> (default 2..8, within 2..10); refused when the layer count is fixed.
    /// </summary>
    public static LayerCountSettings ParseAuto(bool auto, string? method, string? min, string? max)
    {
        if (!auto)
        {
            string? given = !string.IsNullOrWhiteSpace(method) ? "auto_method" : !string.IsNullOrWhiteSpace(min) ? "min_layers" : !string.IsNullOrWhiteSpace(max) ? "max_layers" : null;
            return given is null ? new LayerCountSettings() : throw new ApiException(400, $"{given} is only used with layers=auto");
        }

        var kind = string.IsNullOrWhiteSpace(method) ? LayerCountMethod.Judge : method.Trim().ToLowerInvariant() switch
        {
            "judge" => LayerCountMethod.Judge,
            "count" => LayerCountMethod.Count,
            _ => throw new ApiException(400, $"auto_method must be judge or count, got \"{Truncate(method)}\""),
        };
        int Bound(string? text, string field, int fallback) =>
            string.IsNullOrWhiteSpace(text) ? fallback
            : int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= LayerCountRange.Lowest && n <= MaxLayers ? n
            : throw new ApiException(400, $"{field} must be {LayerCountRange.Lowest}..{MaxLayers}, got \"{Truncate(text)}\"");
        int lo = Bound(min, "min_layers", LayerCountRange.Default.Min);
        int hi = Bound(max, "max_layers", Math.Max(LayerCountRange.Default.Max, lo));
        if (lo > hi)
        {
            throw new ApiException(400, $"min_layers {lo} is above max_layers {hi}");
        }

        return new LayerCountSettings { Range = new LayerCountRange(lo, hi), Method = kind };
    }

    internal static string Truncate(string s) => s.Length <= 40 ? s : s[..40] + "...";
}

/// <summary>An error the API answers with <see cref="StatusCode"/> and <c>{"error": Message}</c>.</summary>
public sealed class ApiException(int statusCode, string message) : Exception(message)
{
    public int StatusCode { get; } = statusCode;
}
