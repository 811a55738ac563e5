using System.Runtime.CompilerServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Model.Lora;

/// <summary>
/// The adapter of one Linear of the base model: <c>forward(x) = scale * B(A(dropout(x)))</c> with A [rank, in] and
/// B [out, rank] in float32. It is attached to the base Linear as a forward hook, so the base module, its field in
/// the model and its <c>weight</c>/<c>bias</c> names stay exactly as they were; the base Linear is referenced, not
/// registered, so this module's state is only <c>lora_A.weight</c> and <c>lora_B.weight</c>.
/// </summary>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    // Which base Linears carry an adapter hook, so that a second injection cannot stack adapters silently.
    private static readonly ConditionalWeakTable<Linear, LoraLinear> Attached = new();

    private readonly LoraFactor _loraA;
    private readonly LoraFactor _loraB;
    private Action? _detach;

    internal LoraLinear(string moduleName, Linear target, int rank, double alpha, double dropout) : base(nameof(LoraLinear))
    {
        ModuleName = moduleName;
        Base = target;
        var weight = target.weight ?? throw new ArgumentException($"Linear '{moduleName}' has no weight", nameof(target));
        Rank = rank;
        Scale = alpha / rank;
        Dropout = dropout;
        InFeatures = weight.shape[1];
        OutFeatures = weight.shape[0];
        _loraA = new LoraFactor(rank, InFeatures, weight.device);
        _loraB = new LoraFactor(OutFeatures, rank, weight.device);
        register_module("lora_A", _loraA);
        register_module("lora_B", _loraB);
    }

    /// <summary>The adapter whose hook is attached to <paramref name="linear"/>, or null when it has none.</summary>
    internal static LoraLinear? AttachedTo(Linear linear) => Attached.TryGetValue(linear, out var adapter) ? adapter : null;

    /// <summary>The module's name in the base model, e.g. <c>transformer_blocks.0.attn.to_q</c>.</summary>
    public string ModuleName { get; }

    /// <summary>The adapted Linear of the base model (not owned).</summary>
    public Linear Base { get; }

    public int Rank { get; }

    /// <summary>alpha / rank.</summary>
    public double Scale { get; }

    public double Dropout { get; }

    public long InFeatures { get; }

    public long OutFeatures { get; }

    /// <summary>lora_A.weight, [rank, in], float32.</summary>
    public Parameter A => _loraA.Weight;

    /// <summary>lora_B.weight, [out, rank], float32.</summary>
    public Parameter B => _loraB.Weight;

    /// <summary>False: the hook leaves the base output untouched (the reference policy).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>True while scale * B A is folded into the base weight (the hook then adds nothing).</summary>
    public bool IsMerged { get; private set; }

    /// <summary>The adapter branch alone: scale * B(A(dropout(x))), computed in the adapters' dtype (float32).</summary>
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var scope = NewDisposeScope();
        var x = input.to(A.dtype);
        if (Dropout > 0)
        {
            // The base Linear carries the model's train/eval mode; this module is not part of the model tree.
            x = nn.functional.dropout(x, Dropout, Base.training);
        }

        return (_loraB.call(_loraA.call(x)) * Scale).MoveToOuterDisposeScope();
    }

    /// <summary>scale * B A, [out, in], in the adapters' dtype: what merging adds to the base weight.</summary>
    public Tensor DeltaWeight()
    {
        using var scope = NewDisposeScope();
        return (matmul(B, A) * Scale).MoveToOuterDisposeScope();
    }

    /// <summary>Folds scale * B A into the base weight (computed in float32, stored in the weight's dtype).</summary>
    internal void Merge()
    {
        if (IsMerged)
        {
            return;
        }

        AddToBase(1);
        IsMerged = true;
    }

    /// <summary>Subtracts scale * B A from the base weight again (exact up to rounding of the weight's dtype).</summary>
    internal void Unmerge()
    {
        if (!IsMerged)
        {
            return;
        }

        AddToBase(-1);
        IsMerged = false;
    }

    internal void Attach()
    {
        if (_detach is not null)
        {
            return;
        }

        if (!Attached.TryAdd(Base, this))
        {
            throw new InvalidOperationException($"'{ModuleName}' already has a LoRA adapter; dispose or unload it first");
        }

        var remover = Base.register_forward_hook((_, input, output) => Apply(input, output));
        _detach = () =>
        {
            remover.remove();
            Attached.Remove(Base);
        };
    }

    internal void Detach()
    {
        _detach?.Invoke();
        _detach = null;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Detach();
        }

        base.Dispose(disposing);
    }

    private Tensor Apply(Tensor input, Tensor output)
    {
        if (!Enabled || IsMerged)
        {
            return output;
        }

        using var scope = NewDisposeScope();
        var delta = forward(input);
        // The sum is formed in float32 (base output upcast), then stored in the base dtype so the rest of the
        // model keeps computing in its own dtype; with B = 0 this returns the base output bit for bit.
        var sum = output.dtype == delta.dtype ? output + delta : (output.to(delta.dtype) + delta).to(output.dtype);
        return sum.MoveToOuterDisposeScope();
    }

    private void AddToBase(int sign)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var weight = Base.weight!;
        var delta = DeltaWeight().to(weight.device);
        var updated = sign > 0 ? weight.to(delta.dtype) + delta : weight.to(delta.dtype) - delta;
        weight.copy_(updated.to(weight.dtype));
    }

    /// <summary>One factor (lora_A or lora_B): a bias-free linear map holding a float32 <c>weight</c>.</summary>
    private sealed class LoraFactor : nn.Module<Tensor, Tensor>
    {
        public LoraFactor(long rows, long cols, Device device) : base(nameof(LoraFactor))
        {
            Weight = new Parameter(zeros(rows, cols, dtype: ScalarType.Float32, device: device));
            Weight.DetachFromDisposeScope();
            register_parameter("weight", Weight);
        }

        public Parameter Weight { get; }

        public override Tensor forward(Tensor input) => nn.functional.linear(input, Weight);
    }
}
