using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;

namespace StableLayers.Judges;

/// <summary>
/// G candidate decompositions of one input image, judged together (phase 2 compares them).
/// <paramref name="Id"/> names the group in errors and reports.
/// </summary>
public sealed record JudgeGroup(string Id, RgbaImage Input, IReadOnlyList<LayerStack> Candidates)
{
    public void Validate()
    {
        if (Candidates.Count == 0)
        {
            throw new ArgumentException($"{Id}: a judge group needs at least one candidate");
        }

        for (int i = 0; i < Candidates.Count; i++)
        {
            LayerStack c = Candidates[i];
            if (c.Width != Input.Width || c.Height != Input.Height)
            {
                throw new ArgumentException(
                    $"{Id}: candidate {CandidateLabels.Label(i)} is {c.Width}x{c.Height}, the input is {Input.Width}x{Input.Height}");
            }
        }
    }
}

/// <summary>Row labels A, B, ..., Z, AA, AB, ... used in prompts, grids and replies.</summary>
public static class CandidateLabels
{
    public static string Label(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        string s = "";
        int n = index + 1;
        while (n > 0)
        {
            n--;
            s = (char)('A' + (n % 26)) + s;
            n /= 26;
        }

        return s;
    }

    public static int? IndexOf(string label)
    {
        string t = label.Trim().ToUpperInvariant();
        if (t.Length == 0 || t.Any(ch => ch < 'A' || ch > 'Z'))
        {
            return null;
        }

        int n = 0;
        foreach (char ch in t)
        {
            n = checked((n * 26) + (ch - 'A' + 1));
        }

        return n - 1;
    }
}
