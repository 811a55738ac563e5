using System.Globalization;
using System.Text;

namespace StableLayers.Model.Text;

/// <summary>
/// The Qwen2 pre-tokenizer: splits text the way the regex
/// <c>(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+</c>
/// does in the Rust tokenizers library. Written as a matcher over code points rather than a .NET Regex because .NET
/// regexes see UTF-16 code units: a letter outside the BMP (𝐀, 𠀀) would be two surrogates, not one <c>\p{L}</c>.
/// <c>\s</c> is Unicode White_Space (as in Rust and Oniguruma).
/// </summary>
public static class QwenPreTokenizer
{
    /// <summary>The pattern string tokenizer.json files of the Qwen2 family carry; other patterns are refused.</summary>
    public const string Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>The pieces of <paramref name="text"/>, in order; concatenated they give the text back.</summary>
    public static List<string> Split(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var cps = new List<int>(text.Length);
        foreach (var r in text.EnumerateRunes())
        {
            cps.Add(r.Value);
        }

        var pieces = new List<string>();
        var sb = new StringBuilder();
        int pos = 0;
        while (pos < cps.Count)
        {
            int end = Match(cps, pos);
            sb.Clear();
            for (int i = pos; i < end; i++)
            {
                sb.Append(char.ConvertFromUtf32(cps[i]));
            }

            pieces.Add(sb.ToString());
            pos = end;
        }

        return pieces;
    }

    /// <summary>End (exclusive) of the match at <paramref name="pos"/>; every position matches one of the alternatives.</summary>
    private static int Match(List<int> s, int pos)
    {
        int n = s.Count;
        int c = s[pos];

        // (?i:'s|'t|'re|'ve|'m|'ll|'d); case folding makes 's' also match U+017F (long s).
        if (c == '\'' && pos + 1 < n)
        {
            int a = s[pos + 1];
            if (IsFold(a, 's') || IsFold(a, 't') || IsFold(a, 'm') || IsFold(a, 'd'))
            {
                return pos + 2;
            }

            if (pos + 2 < n)
            {
                int b = s[pos + 2];
                if ((IsFold(a, 'r') && IsFold(b, 'e')) || (IsFold(a, 'v') && IsFold(b, 'e')) || (IsFold(a, 'l') && IsFold(b, 'l')))
                {
                    return pos + 3;
                }
            }
        }

        // [^\r\n\p{L}\p{N}]?\p{L}+
        if (!IsCrLf(c) && !IsLetter(c) && !IsNumber(c) && pos + 1 < n && IsLetter(s[pos + 1]))
        {
            return LetterRun(s, pos + 1);
        }

        if (IsLetter(c))
        {
            return LetterRun(s, pos);
        }

        // \p{N}
        if (IsNumber(c))
        {
            return pos + 1;
        }

        // " ?[^\s\p{L}\p{N}]+[\r\n]*"
        int start = -1;
        if (c == ' ' && pos + 1 < n && IsOther(s[pos + 1]))
        {
            start = pos + 1;
        }
        else if (IsOther(c))
        {
            start = pos;
        }

        if (start >= 0)
        {
            int i = start;
            while (i < n && IsOther(s[i]))
            {
                i++;
            }

            while (i < n && IsCrLf(s[i]))
            {
                i++;
            }

            return i;
        }

        // Only whitespace is left here.
        int runEnd = pos;
        while (runEnd < n && IsSpace(s[runEnd]))
        {
            runEnd++;
        }

        // \s*[\r\n]+ : the greedy \s* gives back characters until a line break follows, so the match ends just after
        // the run's last \r or \n.
        for (int k = runEnd - 1; k >= pos; k--)
        {
            if (IsCrLf(s[k]))
            {
                return k + 1;
            }
        }

        // \s+(?!\S) : the whole run at the end of the text, otherwise all but the run's last character.
        if (runEnd == n || runEnd - 1 > pos)
        {
            return runEnd == n ? runEnd : runEnd - 1;
        }

        // \s+
        return runEnd;
    }

    private static int LetterRun(List<int> s, int i)
    {
        while (i < s.Count && IsLetter(s[i]))
        {
            i++;
        }

        return i;
    }

    private static bool IsFold(int c, char lower) =>
        c == lower || c == char.ToUpperInvariant(lower) || (lower == 's' && c == 0x017F);

    private static bool IsCrLf(int c) => c is '\r' or '\n';

    private static bool IsOther(int c) => !IsSpace(c) && !IsLetter(c) && !IsNumber(c);

    internal static bool IsSpace(int c) => Rune.IsWhiteSpace(new Rune(c));

    internal static bool IsLetter(int c) => Rune.GetUnicodeCategory(new Rune(c)) is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter
        or UnicodeCategory.OtherLetter;

    internal static bool IsNumber(int c) => Rune.GetUnicodeCategory(new Rune(c)) is UnicodeCategory.DecimalDigitNumber
        or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;
}
