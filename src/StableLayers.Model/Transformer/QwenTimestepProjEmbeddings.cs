using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Model.Transformer;

/// <summary>
/// <c>time_text_embed</c>: the timestep embedding plus, for the layered model, a learnt
/// <c>addition_t_embedding</c> row (index = is_rgb flag, 0 in the public pipeline) added to it.
/// </summary>
public sealed class QwenTimestepProjEmbeddings : nn.Module<Tensor, Tensor?, ScalarType, Tensor>
{
    private readonly TimestepEmbedding timestep_embedder;
    private readonly Embedding? addition_t_embedding;

    public QwenTimestepProjEmbeddings(long inner, bool useAdditionalTCond) : base(nameof(QwenTimestepProjEmbeddings))
    {
        timestep_embedder = new TimestepEmbedding(inner);
        if (useAdditionalTCond)
        {
            addition_t_embedding = nn.Embedding(2, inner);
        }

        RegisterComponents();
    }

    /// <param name="timestep">[B], already in the model dtype (diffusers casts it before projecting).</param>
    /// <param name="additionalTCond">[B] long in {0,1}; null means 0 for every sample (what the public pipeline passes).</param>
    /// <param name="dtype">the model's compute dtype.</param>
    public override Tensor forward(Tensor timestep, Tensor? additionalTCond, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var emb = timestep_embedder.call(TimestepEmbedding.Sinusoidal(timestep).to(dtype));
        if (addition_t_embedding is not null)
        {
            var cond = additionalTCond ?? zeros(timestep.shape[0], dtype: ScalarType.Int64, device: timestep.device);
            emb = emb + addition_t_embedding.call(cond.to(ScalarType.Int64)).to(dtype);
        }

        return emb.MoveToOuterDisposeScope();
    }
}
