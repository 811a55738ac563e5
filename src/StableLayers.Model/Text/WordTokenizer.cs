using System.Text.Json;
using StableLayers.Core;

namespace StableLayers.Model.Text;

/// <summary>
/// Lower-case word tokens for the tiny text encoder: captions of synthetic designs use a small, fixed
/// vocabulary (colours, shapes, a few words of text), so whole words are the right unit. Index 0 is
/// padding, 1 unknown.
/// </summary>
public sealed class WordTokenizer
{
    public const int Pad = 0;
    public const int Unknown = 1;
    private readonly Dictionary<string, int> index;

    public WordTokenizer(IReadOnlyList<string> vocabulary)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        if (vocabulary.Count < 2 || vocabulary[Pad] != "<pad>" || vocabulary[Unknown] != "<unk>")
        {
            throw new ArgumentException("vocabulary must start with <pad>, <unk>", nameof(vocabulary));
        }

        Vocabulary = vocabulary;
        index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < vocabulary.Count; i++)
        {
            index[vocabulary[i]] = i;
        }
    }

    public IReadOnlyList<string> Vocabulary { get; }

    public int Count => Vocabulary.Count;

    /// <summary>A vocabulary of every word in <paramref name="texts"/>, sorted, capped at <paramref name="maxWords"/> most frequent.</summary>
    public static WordTokenizer Build(IEnumerable<string> texts, int maxWords = 1024)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in texts)
        {
            foreach (var w in Words(t))
            {
                counts[w] = counts.GetValueOrDefault(w) + 1;
            }
        }

        var words = counts.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal)
            .Take(maxWords).Select(kv => kv.Key).Order(StringComparer.Ordinal);
        return new WordTokenizer(["<pad>", "<unk>", .. words]);
    }

    public static IEnumerable<string> Words(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int start = -1;
        for (int i = 0; i <= text.Length; i++)
        {
            bool letter = i < text.Length && char.IsLetterOrDigit(text[i]);
            if (letter && start < 0)
            {
                start = i;
            }
            else if (!letter && start >= 0)
            {
                yield return text[start..i].ToLowerInvariant();
                start = -1;
            }
        }
    }

    /// <summary>Token ids of <paramref name="text"/>, truncated to <paramref name="maxTokens"/>; at least one token (unknown) for empty text.</summary>
    public int[] Encode(string text, int maxTokens)
    {
        var ids = Words(text).Take(maxTokens).Select(w => index.GetValueOrDefault(w, Unknown)).ToArray();
        return ids.Length == 0 ? [Unknown] : ids;
    }

    public void Save(string path) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(Vocabulary));

    public static WordTokenizer Load(string path)
    {
        try
        {
            var words = JsonSerializer.Deserialize<string[]>(File.ReadAllText(path)) ?? throw new BadInputException(path, "empty vocabulary");
            return new WordTokenizer(words);
        }
        catch (JsonException e)
        {
            throw new BadInputException(path, $"malformed vocabulary ({e.Message.Split('\n')[0]})");
        }
        catch (ArgumentException e)
        {
            throw new BadInputException(path, e.Message);
        }
    }
}
