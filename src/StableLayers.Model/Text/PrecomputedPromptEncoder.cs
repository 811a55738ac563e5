using System.Globalization;
using StableLayers.Core;
using StableLayers.Model.Weights;
using static TorchSharp.torch;

namespace StableLayers.Model.Text;

/// <summary>
/// Prompt embeddings of the full model's text encoder (Qwen2.5-VL, last hidden state after the template's
/// first 34 tokens), computed elsewhere once per prompt and read from a safetensors file: tensors
/// <c>prompt_embeds.{i}</c> of shape [S_i, 3584] with metadata <c>prompt.{i}</c> = the prompt text.
/// Training uses a small fixed set of prompts, so a lookup table is all the full model needs here.
/// </summary>
public sealed class PrecomputedPromptEncoder : IPromptEncoder
{
    private readonly Dictionary<string, float[,]> table = new(StringComparer.Ordinal);

    public PrecomputedPromptEncoder(string path)
    {
        using var file = SafetensorsFile.Open(path);
        foreach (var (key, prompt) in file.Metadata)
        {
            if (!key.StartsWith("prompt.", StringComparison.Ordinal))
            {
                continue;
            }

            string name = "prompt_embeds." + key["prompt.".Length..];
            if (!file.Contains(name))
            {
                throw new BadInputException(path, $"metadata names {key} but there is no tensor {name}");
            }

            using var t = file.Read(name).to(float32);
            if (t.dim() != 2)
            {
                throw new BadInputException(path, $"{name} must be [tokens, dim], got [{string.Join(",", t.shape)}]");
            }

            int dim = (int)t.shape[1];
            if (Dim != 0 && dim != Dim)
            {
                throw new BadInputException(path, $"{name} has width {dim} but others have {Dim}");
            }

            Dim = dim;
            var values = t.data<float>().ToArray();
            var m = new float[t.shape[0], dim];
            Buffer.BlockCopy(values, 0, m, 0, values.Length * sizeof(float));
            table[prompt] = m;
        }

        if (table.Count == 0)
        {
            throw new BadInputException(path, "no prompt embeddings (expected metadata prompt.{i} and tensors prompt_embeds.{i})");
        }
    }

    public int Dim { get; }

    public IReadOnlyCollection<string> Prompts => table.Keys;

    public PromptEmbedding Encode(IReadOnlyList<string> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var rows = prompts.Select(p => table.TryGetValue(p, out var m)
            ? m
            : throw new BadInputException("prompt embeddings", $"no precomputed embedding for prompt \"{p}\" (have {table.Count}: {string.Join(", ", table.Keys.Take(5).Select(k => $"\"{k}\""))})")).ToArray();
        int len = rows.Max(r => r.GetLength(0));
        var data = new float[prompts.Count * len * Dim];
        var mask = new bool[prompts.Count * len];
        for (int b = 0; b < rows.Length; b++)
        {
            int s = rows[b].GetLength(0);
            Buffer.BlockCopy(rows[b], 0, data, b * len * Dim * sizeof(float), s * Dim * sizeof(float));
            for (int t = 0; t < s; t++)
            {
                mask[(b * len) + t] = true;
            }
        }

        // Host data: LayeredConditioning moves it to the model's device once per conditioning.
        return new PromptEmbedding(tensor(data, [prompts.Count, len, Dim], device: CPU), tensor(mask, [prompts.Count, len], device: CPU));
    }

    /// <summary>Writes a prompt table in the format <see cref="PrecomputedPromptEncoder"/> reads.</summary>
    public static void Write(string path, IReadOnlyList<(string Prompt, Tensor Embeddings)> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var tensors = prompts.Select((p, i) => new KeyValuePair<string, Tensor>("prompt_embeds." + i.ToString(CultureInfo.InvariantCulture), p.Embeddings)).ToList();
        var metadata = prompts.Select((p, i) => ("prompt." + i.ToString(CultureInfo.InvariantCulture), p.Prompt)).ToDictionary(kv => kv.Item1, kv => kv.Item2);
        SafetensorsWriter.WriteFile(path, tensors, ScalarType.Float32, metadata);
    }
}
