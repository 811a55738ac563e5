using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using static TorchSharp.torch;

namespace StableLayers.Model;

/// <summary>
/// Conversions between layer stacks and the model's tensors: float32 in [-1,1], channels first
/// (RGBA for layers, RGB for images), as the Qwen-Image-Layered VAE expects.
/// </summary>
public static class LayerTensors
{
    /// <summary>One RGBA image as a [4, H, W] tensor in [-1,1], on <paramref name="device"/> (default: the CPU).</summary>
    public static Tensor FromImage(RgbaImage image, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        return tensor(image.ToChwSigned(), [4, image.Height, image.Width], device: device ?? CPU);
    }

    /// <summary>A stack as [N, 4, H, W] in [-1,1], layer 0 (background) first, on <paramref name="device"/> (default: the CPU).</summary>
    public static Tensor FromStack(LayerStack stack, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(stack);
        int plane = 4 * stack.Width * stack.Height;
        var all = new float[stack.Count * plane];
        for (int k = 0; k < stack.Count; k++)
        {
            stack[k].ToChwSigned().CopyTo(all, k * plane);
        }

        return tensor(all, [stack.Count, 4, stack.Height, stack.Width], device: device ?? CPU);
    }

    /// <summary>Inverse of <see cref="FromStack"/>: accepts [N,4,H,W] (any float dtype/device); values are clamped and rounded.</summary>
    public static LayerStack ToStack(Tensor layers, IReadOnlyList<string>? names = null)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.dim() != 4 || layers.shape[1] != 4)
        {
            throw new ArgumentException($"expected [N,4,H,W], got [{string.Join(",", layers.shape)}]", nameof(layers));
        }

        return ToStacks(layers, 1, names)[0];
    }

    /// <summary>
    /// [stacks x N, 4, H, W] as <paramref name="stacks"/> stacks of N layers each, read from the device in one transfer.
    /// </summary>
    public static IReadOnlyList<LayerStack> ToStacks(Tensor layers, int stacks, IReadOnlyList<string>? names = null)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.dim() != 4 || layers.shape[1] != 4 || stacks < 1 || layers.shape[0] % stacks != 0)
        {
            throw new ArgumentException($"expected [{stacks} x N,4,H,W], got [{string.Join(",", layers.shape)}]", nameof(layers));
        }

        float[] data;
        using (NewDisposeScope())
        {
            data = HostReads.ToArray<float>(layers.detach().to(float32));
        }

        int n = (int)layers.shape[0] / stacks, h = (int)layers.shape[2], w = (int)layers.shape[3];
        int plane = 4 * h * w;
        var result = new LayerStack[stacks];
        for (int s = 0; s < stacks; s++)
        {
            var stackLayers = new List<Layer>(n);
            for (int k = 0; k < n; k++)
            {
                var img = RgbaImage.FromChwSigned(data.AsSpan(((s * n) + k) * plane, plane), w, h);
                stackLayers.Add(new Layer(names is not null && k < names.Count ? names[k] : $"layer {k}", img));
            }

            result[s] = new LayerStack(stackLayers);
        }

        return result;
    }

    /// <summary>An image's RGB as [3, H, W] in [-1,1] (the condition image; alpha dropped after flattening on white).</summary>
    public static Tensor RgbFromImage(RgbaImage image, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        var flat = Compositor.FlattenOnWhite([image]);
        using var scope = NewDisposeScope();
        return FromImage(flat, device).narrow(0, 0, 3).MoveToOuterDisposeScope();
    }
}
