namespace StableLayers.Model.Transformer;

/// <summary>
/// Analytic floating-point operation count of one transformer forward pass (a multiply-add = 2 FLOPs),
/// from the config and the sequence lengths only. Counts the matrix products (projections, attention
/// scores and values, MLPs, modulation); element-wise work (norms, RoPE, GELU, softmax) is left out,
/// as is usual for model FLOP/s, so achieved FLOP/s is slightly understated.
/// </summary>
public static class TransformerFlops
{
    /// <param name="imageTokens">Output-frame tokens plus condition tokens, per sample.</param>
    public static double Forward(TransformerConfig config, long batch, long imageTokens, long textTokens)
    {
        ArgumentNullException.ThrowIfNull(config);
        double d = config.InnerDim;
        double si = imageTokens, st = textTokens, s = si + st;

        // Per stream: q, k, v and out projections (4 d^2), the MLP d -> 4d -> d (8 d^2).
        double projections = 2 * (si + st) * d * d * (4 + 8);
        double attention = 2 * 2 * s * s * d;          // Q K^T and softmax(.) V over the joint sequence
        double modulation = 2 * 2 * d * 6 * d;         // img_mod and txt_mod: d -> 6d on the timestep embedding
        double perBlock = projections + attention + modulation;

        double embed = (2 * si * config.InChannels * d) + (2 * st * config.JointAttentionDim * d);
        double head = (2 * si * d * config.OutputTokenChannels) + (2 * d * 2 * d);
        double timestep = 2 * ((256 * d) + (d * d));   // timestep_embedder linear_1 (256 -> d) and linear_2

        return batch * ((config.NumLayers * perBlock) + embed + head + timestep);
    }
}
