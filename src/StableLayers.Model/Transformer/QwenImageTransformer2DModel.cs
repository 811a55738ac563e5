using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Model.Transformer;

/// <summary>
/// The Qwen-Image-Layered diffusion transformer (diffusers <c>QwenImageTransformer2DModel</c> with the layered
/// flags). Field names equal the diffusers module names so that <c>state_dict()</c> keys match the released
/// safetensors. Runs in whatever dtype the parameters have (float32 by default; cast with <c>to(bfloat16)</c>);
/// inputs are cast to that dtype.
/// </summary>
public sealed class QwenImageTransformer2DModel : nn.Module
{
    private readonly Linear img_in;
    private readonly RmsNorm txt_norm;
    private readonly Linear txt_in;
    private readonly QwenTimestepProjEmbeddings time_text_embed;
    private readonly ModuleList<QwenImageTransformerBlock> transformer_blocks;
    private readonly AdaLayerNormContinuous norm_out;
    private readonly Linear proj_out;

    public QwenImageTransformer2DModel(TransformerConfig config) : base(nameof(QwenImageTransformer2DModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        long inner = config.InnerDim;
        img_in = nn.Linear(config.InChannels, inner);
        txt_norm = new RmsNorm(config.JointAttentionDim);
        txt_in = nn.Linear(config.JointAttentionDim, inner);
        time_text_embed = new QwenTimestepProjEmbeddings(inner, config.UseAdditionalTCond);
        transformer_blocks = nn.ModuleList(Enumerable.Range(0, config.NumLayers)
            .Select(_ => new QwenImageTransformerBlock(inner, config.NumAttentionHeads, config.AttentionHeadDim)).ToArray());
        norm_out = new AdaLayerNormContinuous(inner);
        proj_out = nn.Linear(inner, config.OutputTokenChannels);
        RegisterComponents();
    }

    public TransformerConfig Config { get; }

    /// <summary>
    /// diffusers' <c>gradient_checkpointing</c>: when true and grad mode is on (training), every transformer block keeps
    /// only its inputs in the forward pass and is recomputed in the backward pass, trading one extra block forward for
    /// not storing the block's activations. No effect under <c>no_grad</c> (sampling, evaluation).
    /// </summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>diffusers' <c>enable_gradient_checkpointing()</c>.</summary>
    public void EnableGradientCheckpointing() => GradientCheckpointing = true;

    /// <summary>diffusers' <c>disable_gradient_checkpointing()</c>.</summary>
    public void DisableGradientCheckpointing() => GradientCheckpointing = false;

    /// <summary>The dtype the model computes in (that of its parameters).</summary>
    public ScalarType DType => img_in.weight!.dtype;

    /// <summary>Predicts the flow velocity for every image token.</summary>
    /// <param name="hiddenStates">[B, S_img, in_channels] packed latents in the <see cref="FrameShape"/> token order.</param>
    /// <param name="encoderHiddenStates">[B, S_txt, joint_attention_dim] text-encoder states (possibly padded).</param>
    /// <param name="encoderMask">[B, S_txt] true (or 1) for real text tokens; padded keys are masked out. Null: no padding.</param>
    /// <param name="timestep">[B] sigma in [0,1] (the pipeline's t/1000).</param>
    /// <param name="frames">the frame layout of the image tokens, shared by the batch.</param>
    /// <param name="additionalTCond">[B] long is_rgb flag (0 in the public pipeline); null means 0.</param>
    /// <returns>[B, S_img, out_channels x patch^2] in the model dtype.</returns>
    public Tensor forward(Tensor hiddenStates, Tensor encoderHiddenStates, Tensor? encoderMask, Tensor timestep,
        IReadOnlyList<FrameShape> frames, Tensor? additionalTCond = null)
    {
        ArgumentNullException.ThrowIfNull(hiddenStates);
        ArgumentNullException.ThrowIfNull(encoderHiddenStates);
        ArgumentNullException.ThrowIfNull(timestep);
        ArgumentNullException.ThrowIfNull(frames);
        CheckShapes(hiddenStates, encoderHiddenStates, encoderMask, timestep, frames);

        using var scope = NewDisposeScope();
        var dtype = DType;
        var device = hiddenStates.device;
        long batch = hiddenStates.shape[0], sImg = hiddenStates.shape[1], sTxt = encoderHiddenStates.shape[1];

        var img = img_in.call(hiddenStates.to(dtype));
        var txt = txt_in.call(txt_norm.call(encoderHiddenStates.to(dtype)));
        // diffusers casts the timestep to the model dtype before the sinusoidal projection (bf16 rounding included).
        var t = timestep.to(dtype);

        Tensor temb, imgTemb;
        Tensor? useFirstHalf = null;
        if (Config.ZeroCondT)
        {
            // zero_cond_t (diffusers): tokens of the first frame are modulated with t, all later frames with t = 0;
            // the text stream and the output norm use t.
            imgTemb = time_text_embed.call(cat([t, t * 0], 0), additionalTCond is null ? null : cat([additionalTCond, additionalTCond], 0), dtype);
            temb = imgTemb.narrow(0, 0, batch);
            useFirstHalf = arange(sImg, device: device).lt(frames[0].TokenCount).reshape(1, sImg, 1);
        }
        else
        {
            temb = time_text_embed.call(t, additionalTCond, dtype);
            imgTemb = temb;
        }

        var rope = Layer3DRope.Tables(Config.AxesDimsRope, frames, (int)sTxt, device);
        Tensor? keyMask = null;
        if (encoderMask is not null)
        {
            var imageKeys = ones([batch, sImg], dtype: ScalarType.Bool, device: device);
            keyMask = cat([encoderMask.to(ScalarType.Bool), imageKeys], 1).reshape(batch, 1, 1, sTxt + sImg);
        }

        bool checkpoint = GradientCheckpointing && is_grad_enabled();
        foreach (var block in transformer_blocks)
        {
            (img, txt) = checkpoint
                ? BlockCheckpoint.Run(block, img, txt, imgTemb, temb, rope, keyMask, useFirstHalf)
                : block.Forward(img, txt, imgTemb, temb, rope, keyMask, useFirstHalf);
        }

        return proj_out.call(norm_out.call(img, temb)).MoveToOuterDisposeScope();
    }

    private void CheckShapes(Tensor hiddenStates, Tensor encoderHiddenStates, Tensor? encoderMask, Tensor timestep, IReadOnlyList<FrameShape> frames)
    {
        long tokens = frames.Sum(f => (long)f.TokenCount);
        if (hiddenStates.dim() != 3 || hiddenStates.shape[1] != tokens || hiddenStates.shape[2] != Config.InChannels)
        {
            throw new ArgumentException($"hidden states [{string.Join(",", hiddenStates.shape)}] do not match [B, {tokens}, {Config.InChannels}] from the frame layout");
        }

        long batch = hiddenStates.shape[0];
        if (encoderHiddenStates.dim() != 3 || encoderHiddenStates.shape[0] != batch || encoderHiddenStates.shape[2] != Config.JointAttentionDim)
        {
            throw new ArgumentException($"encoder hidden states [{string.Join(",", encoderHiddenStates.shape)}] must be [{batch}, S_txt, {Config.JointAttentionDim}]");
        }

        if (encoderMask is not null && (encoderMask.dim() != 2 || encoderMask.shape[0] != batch || encoderMask.shape[1] != encoderHiddenStates.shape[1]))
        {
            throw new ArgumentException($"encoder mask [{string.Join(",", encoderMask.shape)}] must be [B, S_txt]");
        }

        if (timestep.dim() != 1 || timestep.shape[0] != batch)
        {
            throw new ArgumentException($"timestep must be [B] = [{batch}]");
        }
    }
}
