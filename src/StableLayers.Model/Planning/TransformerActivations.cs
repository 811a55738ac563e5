namespace StableLayers.Model.Planning;

/// <summary>
/// Activation memory of one candidate (one batch row) in a transformer forward, derived from what this port's code
/// allocates and keeps (QwenImageTransformer2DModel, QwenImageTransformerBlock, JointAttention, RmsNorm,
/// Layer3DRope, FeedForward and the LoRA forward hook), in bytes. Three facts of the code drive the numbers:
/// <list type="bullet">
/// <item>Every forward runs inside dispose scopes: a block keeps everything it created until it returns, and the
/// model keeps every block's outputs until the whole forward returns (so without gradients the block outputs of
/// all L blocks are alive at the end).</item>
/// <item>The LoRA hook casts its input to float32 for each adapted Linear separately (q, k and v each get their own
/// copy) and forms the sum in float32 before casting back; in fp32 those casts alias instead of copying.</item>
/// <item>Attention is one fused scaled_dot_product_attention over [text, image] tokens: libtorch picks the flash
/// kernel on the CPU (and flash or memory-efficient on CUDA) for these shapes, which never materialises the
/// S x S scores but keeps q, k, v, the output and a float32 log-sum-exp per head for the backward pass.</item>
/// </list>
/// Sizes are per token and stream in multiples of the width d (bytes per element: b for the model dtype, 4 for
/// float32), summed over image and text tokens. What autograd saves for backward follows PyTorch's derivative
/// formulas: a frozen Linear saves nothing big, layer_norm saves its input, the LoRA A factor saves its (float32)
/// input, RMSNorm saves its float32 input, GELU its input, SDPA q, k, v and the output.
/// </summary>
public sealed class TransformerActivations
{
    private const double F = 4; // float32 bytes

    private readonly double d;
    private readonly double b;
    private readonly double heads;
    private readonly double headDim;
    private readonly double blocks;
    private readonly double rank;
    private readonly bool lora;
    private readonly bool upcast; // float32 casts copy (bf16/fp16) rather than alias (fp32)
    private readonly double si;
    private readonly double st;
    private readonly double textDim;
    private readonly double inChannels;
    private readonly double outChannels;

    public TransformerActivations(MemoryPlanRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var t = request.Transformer;
        d = t.InnerDim;
        b = request.DType.Bytes();
        heads = t.NumAttentionHeads;
        headDim = t.AttentionHeadDim;
        blocks = t.NumLayers;
        rank = request.LoraRank;
        lora = request.LoraRank > 0;
        upcast = request.DType != PlanDType.FP32;
        si = request.ImageTokens;
        st = request.TextTokens;
        textDim = t.JointAttentionDim;
        inChannels = t.InChannels;
        outChannels = t.OutputTokenChannels;
    }

    /// <summary>
    /// Inputs a forward reads per candidate: packed latents and prompt embeddings (float32, as the pipeline passes
    /// them) and their casts to the model dtype.
    /// </summary>
    public double Inputs => (si * inChannels * F) + (st * textDim * F) + (upcast ? (si * inChannels * b) + (st * textDim * b) : 0);

    /// <summary>RoPE cos/sin tables (float32, [S, head_dim / 2] each, image and text): one set per forward, whatever the batch.</summary>
    public double SharedPerForward => 2 * (si + st) * (headDim / 2) * F;

    /// <summary>Peak extra memory of the LoRA hook on a Linear in -> out, per token (its output excluded, it is held after).</summary>
    private double HookPeak(double input, double output, bool inputSaved)
    {
        if (!lora)
        {
            return 0;
        }

        // Inside the adapter: the float32 input copy, B's output and the scaled delta (A's rank-r output is negligible).
        double x32 = upcast && !inputSaved ? F * input : 0;
        double adapter = x32 + (2 * F * output) + (F * rank);
        // Then the sum: the float32 delta, the upcast base output, the float32 sum (and its cast back, returned).
        double sum = upcast ? 3 * F * output : F * output;
        return Math.Max(adapter, sum);
    }

    /// <summary>Tensors a Linear leaves in its caller's scope: the base output, plus the hook's sum with LoRA.</summary>
    private double LinearHeld(double output) => (lora ? 2 : 1) * b * output;

    // ---- sampling (no gradients) ----

    /// <summary>What one block holds for a stream's token once it has returned (all created tensors, no LoRA transients).</summary>
    private double BlockHeldAtEnd =>
        (3 * b * d)                 // first modulation: layer_norm, x(1 + scale), + shift
        + (3 * b * d)               // attention output, gated, residual sum
        + (3 * b * d)               // second modulation
        + LinearHeld(4 * d)         // net.0
        + (4 * b * d)               // GELU
        + LinearHeld(d)             // net.2
        + (2 * b * d);              // gated, residual sum

    /// <summary>What one block holds for a stream's token before its MLP starts.</summary>
    private double BlockHeldBeforeMlp => 9 * b * d;

    /// <summary>Peak within a stream's MLP on top of what the block held before it.</summary>
    private double MlpPeak => Math.Max(
        LinearHeld(4 * d) + HookPeak(d, 4 * d, inputSaved: false),
        LinearHeld(4 * d) + (4 * b * d) + LinearHeld(d) + HookPeak(4 * d, d, inputSaved: false));

    /// <summary>
    /// Attention-scope contents per token when the last output projection runs: q and k (projection, sum, RMSNorm,
    /// RoPE), v, the three concatenations, SDPA's output and the output projection.
    /// </summary>
    private double AttentionHeld => (2 * (LinearHeld(d) + (2 * b * d))) + LinearHeld(d) + (3 * b * d) + (b * d) + LinearHeld(d);

    /// <summary>Peak bytes of one candidate's sampling forward (no gradients), beyond weights, inputs and shared tables.</summary>
    public double SamplingPeak
    {
        get
        {
            double s = si + st;
            // img_in and txt_in outputs (and the normed text) plus the outputs of the L - 1 earlier blocks.
            double retained = ((blocks * b * d) * s) + (st * textDim * b);
            double attention = (s * ((3 * b * d) + AttentionHeld)) + (Math.Max(si, st) * HookPeak(d, d, inputSaved: false));
            double imageMlp = (si * (BlockHeldBeforeMlp + MlpPeak)) + (st * BlockHeldBeforeMlp);
            double textMlp = (si * BlockHeldAtEnd) + (st * (BlockHeldBeforeMlp + MlpPeak));
            return retained + Math.Max(attention, Math.Max(imageMlp, textMlp));
        }
    }

    // ---- GRPO update (gradients through the LoRA adapters) ----

    /// <summary>Bytes autograd keeps per token and stream for one block (the first block keeps one layer_norm input less).</summary>
    public double SavedPerBlockToken =>
        (2 * b * d)                               // layer_norm inputs (block input, residual after attention)
        + (upcast ? 3 * F * d : b * d)            // q, k, v adapters' float32 inputs (fp32: the modulated input itself)
        + (upcast ? 2 * F * d : 2 * b * d)        // RMSNorm float32 inputs of q and k
        + (4 * b * d)                             // SDPA: q, k, v, output
        + (upcast ? F * d : 0)                    // to_out adapter input (fp32: a view of the SDPA output)
        + (upcast ? F * d : b * d)                // net.0 adapter input
        + (4 * b * d)                             // GELU input
        + (upcast ? 4 * F * d : 4 * b * d)        // net.2 adapter input
        + (6 * F * rank)                          // A factors' outputs (rank r) of the six adapters of a stream
        + (2 * F * heads)                         // RMSNorm reciprocal RMS of q and k
        + (F * heads)                             // SDPA log-sum-exp
        + (4 * F);                                // layer_norm means and reciprocal std

    /// <summary>Saved bytes of all blocks of one candidate.</summary>
    public double SavedAllBlocks => ((blocks * SavedPerBlockToken) - (b * d)) * (si + st);

    /// <summary>
    /// Peak bytes of one candidate's update (forward with gradients, then backward), beyond weights, inputs, tables and
    /// the LoRA state. Without checkpointing: the larger of (a) the last block's forward at the image MLP's first
    /// projection (all earlier blocks' saved tensors, this block's saved and held tensors, the hook's transient) and
    /// (b) the start of backward (everything saved plus the gradients of the last MLP's second projection).
    /// With checkpointing: the block inputs of every block plus one block's recompute, forward and backward.
    /// </summary>
    public double UpdatePeak => Checkpointed ? CheckpointedPeak : PlainUpdatePeak(blocks);

    /// <summary>Set by the plan; whether the update recomputes blocks.</summary>
    public bool Checkpointed { get; init; }

    private double PlainUpdatePeak(double savedBlocks)
    {
        double s = si + st;
        double perToken = SavedPerBlockToken;
        double earlier = (savedBlocks - 1) * perToken * s;
        // This block up to the image MLP: everything saved but the MLP's, for both streams.
        double savedBeforeMlp = perToken - (4 * b * d) - (upcast ? 5 * F * d : 5 * b * d);
        // Held but not saved: both modulations (layer_norm, scaled, shifted; in fp32 the shifted one is the saved
        // adapter input), the attention output and its gated copy.
        double heldNotSaved = (upcast ? 6 * b * d : 4 * b * d) + (2 * b * d);
        // The first block saves one layer_norm input less (its input needs no gradient), but img_in's and txt_in's
        // outputs are held by the model's scope: the two cancel.
        double forward = earlier
            + (s * (savedBeforeMlp + heldNotSaved))
            + (si * ((upcast ? F * d : 0) + LinearHeld(4 * d) + HookPeak(d, 4 * d, inputSaved: true)));
        double backward = (savedBlocks * perToken * s) - (b * d * s) + (si * b * d) + (si * BackwardTransient);
        return Math.Max(forward, backward);
    }

    /// <summary>Gradients alive in the last MLP's backward: the adapter input's float32 gradient, its cast and the base's input gradient, the residual gradients.</summary>
    private double BackwardTransient => (4 * F * d) + (upcast ? 4 * b * d : 0) + (4 * b * d) + (2 * b * d);

    /// <summary>
    /// BlockCheckpoint: the forward runs each block without a graph and saves only its inputs (the previous block's
    /// outputs, which the model's scope holds anyway), so the first pass peaks like sampling. In backward each block is
    /// recomputed with gradients on detached copies of its inputs: all blocks' inputs, the incoming output gradients and
    /// one block's saved and held tensors (its layer_norm input aliases the kept input, which the output gradients offset).
    /// </summary>
    private double CheckpointedPeak
    {
        get
        {
            double s = si + st;
            double inputs = blocks * b * d * s;
            return Math.Max(inputs + PlainUpdatePeak(1), SamplingPeak);
        }
    }
}
