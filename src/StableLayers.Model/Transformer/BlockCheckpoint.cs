using StableLayers.Model.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Model.Transformer;

/// <summary>
/// Activation checkpointing of one <see cref="QwenImageTransformerBlock"/> as a custom autograd function (TorchSharp
/// has no checkpoint API). The forward pass runs the block without building a graph and keeps only what the block
/// was called with; the backward pass runs the block again with gradients on, on detached copies of those inputs,
/// and differentiates the recomputed outputs against the incoming output gradients. The block's trainable
/// parameters - its own and those of the LoRA adapters hooked onto its Linears - are registered as inputs of the
/// function, so the autograd engine delivers their gradients exactly as for the plain forward (accumulated into
/// <c>.grad</c> by <c>backward()</c>, or returned by <c>autograd.grad</c>), and the function takes part in the graph
/// even when neither stream requires grad (the first block under LoRA training, whose inputs come from frozen layers).
/// </summary>
/// <remarks>
/// The block itself draws no random numbers (its only dropout has p = 0, which libtorch returns unchanged without
/// touching the generator); LoRA dropout does, so when an adapter of the block has active dropout the CPU generator's
/// state is recorded in the forward pass and restored around the recompute. Adapters' enabled flags are recorded too
/// (the update may disable them in between to evaluate the reference policy).
/// </remarks>
internal sealed class BlockCheckpoint : autograd.MultiTensorFunction<BlockCheckpoint>
{
    // Position of the first tensor argument in apply's argument list (0 is the Call).
    private const int FirstTensor = 1;
    private const int StreamInputs = 4; // img, txt, imgTemb, txtTemb

    // Gradient tensors handed back to the engine by an earlier backward on this thread. The engine copies each
    // returned handle as soon as the backward returns, so these can be released at the next call; keeping the managed
    // handles alive until then (instead of disposing them before returning) is what makes handing them back safe.
    [ThreadStatic]
    private static List<Tensor>? _handedBack;

    public override string Name => nameof(BlockCheckpoint);

    /// <summary>The block's forward with checkpointing: same arguments and results as <see cref="QwenImageTransformerBlock.Forward"/>.</summary>
    public static (Tensor Img, Tensor Txt) Run(QwenImageTransformerBlock block, Tensor img, Tensor txt, Tensor imgTemb, Tensor txtTemb,
        RopeTables rope, Tensor? keyMask, Tensor? useFirstHalf)
    {
        ArgumentNullException.ThrowIfNull(block);
        ArgumentNullException.ThrowIfNull(rope);
        ReleaseHandedBack();
        var adapters = block.modules().OfType<Linear>().Select(LoraLinear.AttachedTo).OfType<LoraLinear>().ToList();
        var trainable = block.parameters().Concat(adapters.SelectMany(a => new[] { a.A, a.B }))
            .Where(p => p.requires_grad).Cast<Tensor>().ToList();
        var call = new Call(block, rope, keyMask, useFirstHalf,
            [img.requires_grad, txt.requires_grad, imgTemb.requires_grad, txtTemb.requires_grad],
            adapters.Select(a => new AdapterState(a, a.Enabled, a.IsMerged)).ToList(), trainable);

        // apply_internal keeps an empty_like of every output for zero-filling undefined output gradients; this
        // function handles undefined gradients itself (materialize_grads off), so those buffers are released with
        // this scope instead of living as long as the graph.
        using var scope = NewDisposeScope();
        var outputs = apply([call, img, txt, imgTemb, txtTemb, .. trainable]);
        return (outputs[0].MoveToOuterDisposeScope(), outputs[1].MoveToOuterDisposeScope());
    }

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var call = (Call)vars[0];
        var img = (Tensor)vars[FirstTensor];
        var txt = (Tensor)vars[FirstTensor + 1];
        var imgTemb = (Tensor)vars[FirstTensor + 2];
        var txtTemb = (Tensor)vars[FirstTensor + 3];
        ctx.set_materialize_grads(false);
        ctx.save_data(nameof(Call), call);
        // Saved through the context (not the Call) so that they outlive the caller's dispose scope until backward.
        ctx.save_for_backward([img, txt, imgTemb, txtTemb, call.Rope.ImageCos, call.Rope.ImageSin, call.Rope.TextCos, call.Rope.TextSin,
            call.KeyMask!, call.UseFirstHalf!]);
        call.RecordRng(img.device);
        var (outImg, outTxt) = call.Block.Forward(img, txt, imgTemb, txtTemb, call.Rope, call.KeyMask, call.UseFirstHalf);
        return [outImg, outTxt];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grad_outputs)
    {
        ReleaseHandedBack();
        var call = (Call)ctx.get_data(nameof(Call));
        var grads = new Tensor?[FirstTensor + StreamInputs + call.Trainable.Count];
        using (var scope = NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            var inputs = new Tensor[StreamInputs];
            for (int i = 0; i < StreamInputs; i++)
            {
                inputs[i] = saved[i].detach().requires_grad_(call.InputNeedsGrad[i]);
            }

            var rope = new RopeTables(saved[4], saved[5], saved[6], saved[7]);
            Tensor? keyMask = saved[8], useFirstHalf = saved[9];
            var outputs = new List<Tensor>();
            var outputGrads = new List<Tensor>();
            using (enable_grad())
            using (call.Replay())
            {
                var (outImg, outTxt) = call.Block.Forward(inputs[0], inputs[1], inputs[2], inputs[3], rope, keyMask, useFirstHalf);
                // The text stream of the last block feeds nothing: its gradient arrives undefined.
                foreach (var (output, grad) in new[] { (outImg, grad_outputs[0]), (outTxt, grad_outputs[1]) })
                {
                    if (grad is not null && !grad.IsInvalid)
                    {
                        outputs.Add(output);
                        outputGrads.Add(grad);
                    }
                }
            }

            var trainable = call.Trainable;
            var wrtIndex = Enumerable.Range(0, StreamInputs).Where(i => call.InputNeedsGrad[i])
                .Select(i => FirstTensor + i).Concat(Enumerable.Range(FirstTensor + StreamInputs, trainable.Count)).ToList();
            var wrt = Enumerable.Range(0, StreamInputs).Where(i => call.InputNeedsGrad[i]).Select(i => inputs[i]).Concat(trainable).ToList();
            if (outputs.Count > 0 && wrt.Count > 0)
            {
                var result = autograd.grad(outputs, wrt, outputGrads, allow_unused: true);
                for (int j = 0; j < wrtIndex.Count; j++)
                {
                    if (!result[j].IsInvalid)
                    {
                        grads[wrtIndex[j]] = result[j].DetachFromDisposeScope();
                    }
                }
            }
        }

        // The incoming gradients were created for this call and belong to it.
        foreach (var g in grad_outputs)
        {
            g?.Dispose();
        }

        _handedBack ??= [];
        _handedBack.AddRange(grads.OfType<Tensor>());
        return grads.Select(g => g!).ToList();
    }

    /// <summary>Releases the gradient handles an earlier backward on this thread handed to the engine (it holds its own references).</summary>
    private static void ReleaseHandedBack()
    {
        if (_handedBack is null)
        {
            return;
        }

        foreach (var t in _handedBack)
        {
            t.Dispose();
        }

        _handedBack.Clear();
    }

    private sealed record AdapterState(LoraLinear Adapter, bool Enabled, bool Merged);

    /// <summary>What the recompute needs besides the saved tensors; one per checkpointed block call.</summary>
    private sealed class Call(QwenImageTransformerBlock block, RopeTables rope, Tensor? keyMask, Tensor? useFirstHalf,
        bool[] inputNeedsGrad, List<AdapterState> adapters, List<Tensor> trainable)
    {
        private Tensor? _rngState;

        public QwenImageTransformerBlock Block { get; } = block;

        public RopeTables Rope { get; } = rope;

        public Tensor? KeyMask { get; } = keyMask;

        public Tensor? UseFirstHalf { get; } = useFirstHalf;

        public bool[] InputNeedsGrad { get; } = inputNeedsGrad;

        /// <summary>The trainable parameters passed to apply (leaves owned by the model and its adapters).</summary>
        public List<Tensor> Trainable { get; } = trainable;

        /// <summary>Records the generator state when an adapter of the block will draw dropout masks.</summary>
        public void RecordRng(Device device)
        {
            if (!adapters.Any(a => a.Enabled && !a.Merged && a.Adapter.Dropout > 0 && a.Adapter.Base.training))
            {
                return;
            }

            if (device.type != DeviceType.CPU)
            {
                // TorchSharp 0.107 exposes only the CPU generator's state; without it the recompute would draw other masks.
                throw new NotSupportedException("gradient checkpointing with LoRA dropout is only supported on the CPU; set the LoRA dropout to 0");
            }

            _rngState = random.get_rng_state().DetachFromDisposeScope();
        }

        /// <summary>Puts adapters and generator in their forward-pass state for the recompute; disposing restores them.</summary>
        public IDisposable Replay()
        {
            var current = adapters.Select(a => a.Adapter.Enabled).ToList();
            for (int i = 0; i < adapters.Count; i++)
            {
                if (adapters[i].Adapter.IsMerged != adapters[i].Merged)
                {
                    throw new InvalidOperationException($"LoRA adapter '{adapters[i].Adapter.ModuleName}' was merged or unmerged between a checkpointed forward and its backward");
                }

                adapters[i].Adapter.Enabled = adapters[i].Enabled;
            }

            Tensor? rngNow = null;
            if (_rngState is not null)
            {
                rngNow = random.get_rng_state().DetachFromDisposeScope();
                random.set_rng_state(_rngState);
            }

            return new Restore(() =>
            {
                for (int i = 0; i < adapters.Count; i++)
                {
                    adapters[i].Adapter.Enabled = current[i];
                }

                if (rngNow is not null)
                {
                    random.set_rng_state(rngNow);
                    rngNow.Dispose();
                }
            });
        }
    }

    private sealed class Restore(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}
