using static TorchSharp.torch;

namespace StableLayers.Model.Text;

/// <summary>Prompt embeddings as the transformer's text stream takes them.</summary>
/// <param name="Embeddings">[B, S, joint_attention_dim], float32.</param>
/// <param name="Mask">[B, S] bool, true for real tokens (padding is masked out of joint attention).</param>
public sealed record PromptEmbedding(Tensor Embeddings, Tensor Mask);

/// <summary>
/// Turns prompts into text-stream embeddings. Two implementations: precomputed embeddings of the real
/// Qwen2.5-VL encoder read from a file (full model) and a tiny learned encoder trained with the tiny model.
/// </summary>
public interface IPromptEncoder
{
    /// <summary>Width of each embedding (the transformer's joint_attention_dim).</summary>
    int Dim { get; }

    PromptEmbedding Encode(IReadOnlyList<string> prompts);
}
