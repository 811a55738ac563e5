using StableLayers.Model.Text;

namespace StableLayers.Model.Planning;

/// <summary>One line of the plan: a named part and its size in bytes.</summary>
public sealed record MemoryPart(string Name, double Bytes, string Detail);

/// <summary>A card size (usable bytes) and the largest micro-batches (candidates per forward/backward, at most G) that fit it.</summary>
public sealed record CardVerdict(string Card, double UsableBytes, int SamplingMicroBatch, int UpdateMicroBatch, double SamplingPeakAtMax, double UpdatePeakAtMax, bool EncodingFits = true)
{
    /// <summary>The prompt encoding (when the text encoder runs on the device), the sampling forward and the update fit with at least one candidate per pass.</summary>
    public bool Fits => EncodingFits && SamplingMicroBatch >= 1 && UpdateMicroBatch >= 1;
}

/// <summary>
/// Memory plan of GRPO fine-tuning (and sampling) of the layered model: resident parts (weights, LoRA and its
/// AdamW state, stored rollouts) and per-candidate activations, for <see cref="MemoryPlanRequest"/>. All sizes in bytes.
/// The phases are: sampling (one transformer forward without gradients over a micro-batch of candidates) and the
/// update (forward with gradients and backward over a micro-batch). The optimiser state, the prompt/condition
/// inputs and the stored transitions of the whole group persist through both.
/// </summary>
public sealed class MemoryPlan
{
    /// <summary>Cards the verdict is given for: nominal size and the GiB a process sees on them (nvidia-smi totals).</summary>
    public static IReadOnlyList<(string Name, double GiB)> Cards { get; } = [("24 GB", 24), ("48 GB", 48), ("80 GB", 80), ("141 GB", 140.4)];

    /// <summary>Kept free on a card for the CUDA context, cuBLAS workspaces and allocator rounding (not measured here).</summary>
    public const double CardReserveGiB = 1.5;

    public const double GiB = 1024.0 * 1024 * 1024;

    private MemoryPlan(MemoryPlanRequest request)
    {
        Request = request;
        Activations = new TransformerActivations(request) { Checkpointed = request.Checkpointing };
        TransformerParameters = request.Transformer.ParameterCount();
        VaeParameters = request.Vae.ParameterCount();
        LoraParameters = request.LoraRank > 0 ? request.Lora.TrainableParameterCount(request.Transformer) : 0;
    }

    public MemoryPlanRequest Request { get; }

    public TransformerActivations Activations { get; }

    public long TransformerParameters { get; }

    public long VaeParameters { get; }

    public long LoraParameters { get; }

    public bool Trains => Request.LoraRank > 0;

    public double TransformerWeights => TransformerParameters * (double)Request.DType.Bytes();

    /// <summary>The VAE is kept in float32 (the port loads and runs it in float32 whatever the transformer's dtype).</summary>
    public double VaeWeights => VaeParameters * 4.0;

    /// <summary>Parameters of the text encoder's loaded weights (the released encoder's from its config).</summary>
    public long TextEncoderParameters => Request.QwenTextEncoder?.ParameterCount() ?? Request.TextEncoderParameters;

    /// <summary>The text encoder's weights while it is loaded (in the run's dtype, as the loader casts every module).</summary>
    public double TextEncoderLoadedWeights => TextEncoderParameters * (double)Request.DType.Bytes();

    /// <summary>The text encoder's weights through the run: 0 when precomputed or released after encoding.</summary>
    public double TextEncoderWeights => Request.QwenTextEncoder is null || Request.TextEncoderPlacement == TextEncoderPlacement.Resident ? TextEncoderLoadedWeights : 0;

    /// <summary>Whether a prompt is encoded on the device at all (the released encoder, not a precomputed table).</summary>
    public bool Encodes => Request.QwenTextEncoder is not null && Request.TextEncoderPlacement != TextEncoderPlacement.Precomputed;

    /// <summary>
    /// Activation peak of one prompt's encoder forward (no grad) over <see cref="MemoryPlanRequest.EncoderTokens"/>
    /// tokens L: the residual stream (the encoder's scope keeps the embeddings and every layer's output until the forward
    /// returns, and the running layer holds its two norms, attention output and sum: (layers + 4) L x hidden), the bool
    /// causal/padding masks (4 L^2 B),
    /// the RoPE tables, the larger of one layer's attention (q/k/v, RoPE temporaries of q, k and v repeated to every
    /// query head, output and o_proj: ~7 L x hidden, and the L x L scores and softmax of every head, an upper bound:
    /// with a boolean mask the CPU's fused attention may take the unfused path) and its SwiGLU MLP (gate, up, act,
    /// product: 4 L x intermediate), plus the float32 copy of the output.
    /// </summary>
    public double EncodingActivations
    {
        get
        {
            if (Request.QwenTextEncoder is not { } c)
            {
                return 0;
            }

            double l = Request.EncoderTokens, d = Request.DType.Bytes();
            double stream = (c.NumHiddenLayers + 4) * l * c.HiddenSize * d;
            double masks = 4 * l * l;
            double rope = 2 * l * c.HeadDim * (4 + d);
            double attention = ((7 * l * c.HiddenSize) + (2 * l * c.NumKeyValueHeads * c.HeadDim)) * d + (2 * c.NumAttentionHeads * l * l * d);
            double mlp = 4 * l * c.IntermediateSize * d;
            return stream + masks + rope + Math.Max(attention, mlp) + (l * c.HiddenSize * 4.0);
        }
    }

    /// <summary>Peak while the prompt is encoded: transformer, VAE and encoder weights are loaded (before any LoRA state) plus the encoder's activations.</summary>
    public double EncodingPeak => Encodes ? TransformerWeights + VaeWeights + TextEncoderLoadedWeights + EncodingActivations : 0;

    /// <summary>LoRA A and B factors, float32.</summary>
    public double LoraWeights => LoraParameters * 4.0;

    /// <summary>Gradients (float32) and AdamW's two moments (float32) of the adapters.</summary>
    public double LoraTrainingState => Trains ? LoraParameters * 12.0 : 0;

    /// <summary>
    /// Stored rollout of one candidate: per SDE-window step x_t, x_{t-1}, the old mean and the noise (float32 latents
    /// [N + 1, C, h, w]) and a float64 log-probability, plus the final latents.
    /// </summary>
    public double RolloutPerCandidate
    {
        get
        {
            int f = Request.Vae.SpatialCompression;
            double latent = (Request.Layers + 1.0) * Request.Vae.ZDim * (Request.Height / f) * (Request.Width / f) * 4.0;
            return (Request.WindowSteps * ((4 * latent) + 8)) + latent;
        }
    }

    /// <summary>Weights and state that stay for the whole run.</summary>
    public double Resident => TransformerWeights + VaeWeights + TextEncoderWeights + LoraWeights + LoraTrainingState;

    /// <summary>Per candidate of a sampling forward: its inputs and activation peak.</summary>
    public double SamplingPerCandidate => Activations.Inputs + Activations.SamplingPeak;

    /// <summary>Per candidate of an update pass: its inputs and activation peak (0 without LoRA: nothing to train).</summary>
    public double UpdatePerCandidate => Trains ? Activations.Inputs + Activations.UpdatePeak : 0;

    /// <summary>Memory that persists through a step: resident parts and the group's stored rollouts.</summary>
    public double StepFixed => Resident + (Trains ? Request.GroupSize * RolloutPerCandidate : 0);

    public double SamplingPeak(int microBatch) => StepFixed + Activations.SharedPerForward + (microBatch * SamplingPerCandidate);

    public double UpdatePeak(int microBatch) => Trains ? StepFixed + Activations.SharedPerForward + (microBatch * UpdatePerCandidate) : 0;

    /// <summary>The parts, in the order the command prints them.</summary>
    public IReadOnlyList<MemoryPart> Parts()
    {
        var r = Request;
        var parts = new List<MemoryPart>
        {
            new("transformer weights", TransformerWeights, $"{Count(TransformerParameters)} params x {r.DType.Bytes()} B ({r.DType.Name()})"),
            new("VAE weights", VaeWeights, $"{Count(VaeParameters)} params x 4 B (float32)"),
            TextEncoderPart(),
        };
        if (Encodes)
        {
            parts.Add(new("text encoding (once)", EncodingActivations, $"activation peak of one prompt over {r.EncoderTokens} tokens ({QwenPromptEncoder.DropTokens} template + {r.TextTokens} kept); peak with all weights {Gb(EncodingPeak)}"));
        }
        if (Trains)
        {
            parts.Add(new("LoRA adapters", LoraWeights, $"rank {r.LoraRank}, {Count(LoraParameters)} params x 4 B (float32)"));
            parts.Add(new("LoRA grads + AdamW", LoraTrainingState, "3 x 4 B per adapter param"));
            parts.Add(new("stored rollouts (G)", r.GroupSize * RolloutPerCandidate, $"{r.GroupSize} x {Mb(RolloutPerCandidate)}: {r.WindowSteps} window steps x (x_t, x_t-1, mean, noise) + log-prob, final latents"));
        }

        parts.Add(new("RoPE tables (per forward)", Activations.SharedPerForward, "cos/sin float32, shared by the micro-batch"));
        parts.Add(new("sampling, per candidate", SamplingPerCandidate, $"no grad: inputs {Mb(Activations.Inputs)} + peak of one forward"));
        if (Trains)
        {
            parts.Add(new("update, per candidate", UpdatePerCandidate, r.Checkpointing
                ? "with grad, checkpointed: block inputs + one block's recompute and backward"
                : "with grad: saved tensors of every block + the last block's peak"));
        }

        return parts;
    }

    private MemoryPart TextEncoderPart()
    {
        var r = Request;
        string size = $"{Count(TextEncoderParameters)} params x {r.DType.Bytes()} B";
        if (r.QwenTextEncoder is null)
        {
            return new("text encoder", TextEncoderWeights, r.TextEncoderParameters > 0
                ? $"{r.TextEncoderName}: {size}"
                : $"{r.TextEncoderName}: not resident (prompt embeddings precomputed)");
        }

        return r.TextEncoderPlacement switch
        {
            TextEncoderPlacement.Resident => new("text encoder", TextEncoderWeights, $"{r.TextEncoderName}: {size}, resident"),
            TextEncoderPlacement.Offloaded => new("text encoder", 0, $"{r.TextEncoderName}: {size} = {Gb(TextEncoderLoadedWeights)} while encoding, released after"),
            _ => new("text encoder", 0, $"{r.TextEncoderName}: not loaded (prompt embeddings precomputed)"),
        };
    }

    /// <summary>The largest micro-batch (1..G) whose peak fits <paramref name="usableBytes"/>; 0 if one candidate does not.</summary>
    public static int LargestMicroBatch(double usableBytes, double fixedBytes, double perCandidate, int groupSize)
    {
        if (perCandidate <= 0)
        {
            return groupSize;
        }

        double room = usableBytes - fixedBytes;
        return room < perCandidate ? 0 : (int)Math.Min(groupSize, Math.Floor(room / perCandidate));
    }

    public IReadOnlyList<CardVerdict> Verdicts() => [.. Cards.Select(c => Verdict(c.Name, (c.GiB - CardReserveGiB) * GiB))];

    public CardVerdict Verdict(string name, double usableBytes)
    {
        double fixedSampling = StepFixed + Activations.SharedPerForward;
        int sampling = LargestMicroBatch(usableBytes, fixedSampling, SamplingPerCandidate, Request.GroupSize);
        int update = Trains ? LargestMicroBatch(usableBytes, fixedSampling, UpdatePerCandidate, Request.GroupSize) : 0;
        return new CardVerdict(name, usableBytes, sampling, update, SamplingPeak(Math.Max(1, sampling)), UpdatePeak(Math.Max(1, update)), EncodingPeak <= usableBytes);
    }

    public static MemoryPlan Compute(MemoryPlanRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        return new MemoryPlan(request);
    }

    public static string Count(long n) => n >= 1_000_000_000 ? $"{n / 1e9:F2}B" : n >= 1_000_000 ? $"{n / 1e6:F1}M" : n >= 1000 ? $"{n / 1e3:F1}K" : n.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public static string Gb(double bytes) => $"{bytes / GiB:F2} GiB";

    public static string Mb(double bytes) => bytes >= GiB ? Gb(bytes) : $"{bytes / (1024.0 * 1024):F1} MiB";
}
