using static TorchSharp.torch;

namespace StableLayers.Model;

/// <summary>
/// The one way device tensors reach the host. Each call is one device-to-host transfer (a synchronisation
/// point on a GPU) and is counted, so a step's host synchronisations can be measured (benchmark grpo-step)
/// and kept to images plus one batched read of the logged scalars.
/// </summary>
public static class HostReads
{
    private static long count;

    /// <summary>Transfers made by this process so far.</summary>
    public static long Count => Interlocked.Read(ref count);

    /// <summary>The elements of <paramref name="t"/> in row-major order, as <typeparamref name="T"/> (t's own dtype).</summary>
    public static T[] ToArray<T>(Tensor t)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(t);
        Interlocked.Increment(ref count);
        using var scope = NewDisposeScope();
        return t.detach().cpu().contiguous().data<T>().ToArray();
    }

    /// <summary>Several scalar (one-element) tensors read together as float64, in one transfer.</summary>
    public static double[] Scalars(params Tensor[] scalars)
    {
        ArgumentNullException.ThrowIfNull(scalars);
        if (scalars.Length == 0)
        {
            return [];
        }

        using var scope = NewDisposeScope();
        var packed = stack(scalars.Select(s => s.detach().reshape(1).to(ScalarType.Float64)).ToArray()).reshape(-1);
        return ToArray<double>(packed);
    }
}
