using System.Text.RegularExpressions;

namespace StableLayers.Judges.Vlm;

/// <summary>One generated token with its top alternatives (token text, natural-log probability).</summary>
public sealed record TokenLogprob(string Token, IReadOnlyList<(string Token, double LogProb)> Top);

/// <summary>
/// Logit mode: for each criterion, find the token that carries its digit in the reply and replace the
/// integer with the expected score sum_k k * p(k), k = 0..5, over the top alternatives that are single
/// digits 0-5 (renormalised over those). Criteria whose digit token or alternatives are not found keep
/// the integer.
/// </summary>
public static class LogitScores
{
    public static double[] Expected(string text, IReadOnlyList<TokenLogprob> tokens, IReadOnlyList<int> integers)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(integers);
        double[] result = integers.Select(i => (double)i).ToArray();
        string joined = string.Concat(tokens.Select(t => t.Token));
        int offsetInJoined = joined.IndexOf(text.Trim(), StringComparison.Ordinal);
        if (tokens.Count == 0 || offsetInJoined < 0)
        {
            return result;
        }

        string body = text.Trim();
        for (int c = 0; c < Criteria.Keys.Count; c++)
        {
            Match m = Regex.Match(body, "\"" + Regex.Escape(Criteria.Keys[c]) + "\"\\s*:\\s*\"?([0-5])(?![0-9.])");
            if (!m.Success)
            {
                continue;
            }

            int at = offsetInJoined + m.Groups[1].Index;
            int pos = 0;
            foreach (TokenLogprob t in tokens)
            {
                if (at < pos + t.Token.Length)
                {
                    if (t.Token.Trim().Length == 1 && Expectation(t.Top) is { } e)
                    {
                        result[c] = e;
                    }

                    break;
                }

                pos += t.Token.Length;
            }
        }

        return result;
    }

    private static double? Expectation(IReadOnlyList<(string Token, double LogProb)> top)
    {
        double mass = 0, sum = 0;
        foreach (var (tok, lp) in top)
        {
            string s = tok.Trim();
            if (s.Length == 1 && s[0] is >= '0' and <= '5' && double.IsFinite(lp))
            {
                double p = Math.Exp(lp);
                mass += p;
                sum += p * (s[0] - '0');
            }
        }

        return mass > 0 ? sum / mass : null;
    }
}
