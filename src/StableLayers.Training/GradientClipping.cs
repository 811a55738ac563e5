using static TorchSharp.torch;

namespace StableLayers.Training;

/// <summary>Gradient-norm clipping that keeps the norm on the device (no host synchronisation).</summary>
public static class GradientClipping
{
    /// <summary>
    /// Scales the gradients so their total 2-norm is at most <paramref name="maxNorm"/>, with the ops and order of
    /// libtorch's clip_grad_norm_ (per-tensor norms, the norm of their stack, coefficient max / (norm + 1e-6) clamped
    /// at 1), so results are bit-identical to it; returns the total norm before clipping as a device tensor instead
    /// of reading it back to the host.
    /// </summary>
    public static Tensor ClipTotalNorm(IEnumerable<Tensor> parameters, double maxNorm)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var grads = parameters.Select(p => p.grad).OfType<Tensor>().ToList();
        if (grads.Count == 0)
        {
            throw new InvalidOperationException("no gradients to clip");
        }

        var norms = grads.Select(g => g.norm(2.0f)).ToList();
        var total = norms.Count == 1 ? norms[0] : stack(norms).norm(2.0f);
        var denominator = total.add(1e-6);
        var coefficient = full_like(denominator, maxNorm).div_(denominator).clamp_max(1.0);
        foreach (var g in grads)
        {
            g.mul_(coefficient);
        }

        return total.MoveToOuterDisposeScope();
    }
}
