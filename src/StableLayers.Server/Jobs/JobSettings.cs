using System.Globalization;

namespace StableLayers.Server.Jobs;

/// <summary>What a job was asked for. <see cref="Layers"/> null means "auto": the layer count is chosen per image.</summary>
public sealed record JobSettings(int? Layers, long Seed, int Steps)
{
    public const int MinLayers = 1;
    public const int MaxLayers = 10;
    public const string Auto = "auto";

    public bool IsAuto => Layers is null;

    /// <summary>The layer count as the API writes it: a number, or "auto".</summary>
    public string LayersText => Layers?.ToString(CultureInfo.InvariantCulture) ?? Auto;

    /// <summary>Parses the form field <c>layers</c>: an integer 1..10 or "auto" (absent: 4).</summary>
    public static int? ParseLayers(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return 4;
        }

        text = text.Trim();
        if (string.Equals(text, Auto, StringComparison.OrdinalIgnoreCase))
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

    internal static string Truncate(string s) => s.Length <= 40 ? s : s[..40] + "...";
}

/// <summary>An error the API answers with <see cref="StatusCode"/> and <c>{"error": Message}</c>.</summary>
public sealed class ApiException(int statusCode, string message) : Exception(message)
{
    public int StatusCode { get; } = statusCode;
}
