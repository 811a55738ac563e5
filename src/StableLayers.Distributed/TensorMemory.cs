using TorchSharp;

namespace StableLayers.Distributed;

/// <summary>Checks a tensor handed to an all-reduce and finds its first element in memory.</summary>
internal static class TensorMemory
{
    /// <summary>Throws <see cref="ArgumentException"/> naming the problem unless the tensor is contiguous float32/float64.</summary>
    internal static void RequireReducible(torch.Tensor tensor, string engine)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.dtype is not (torch.ScalarType.Float32 or torch.ScalarType.Float64))
        {
            throw new ArgumentException($"{engine} all-reduce sums float32 or float64 tensors, got {tensor.dtype}", nameof(tensor));
        }

        if (!tensor.is_contiguous())
        {
            throw new ArgumentException(
                $"{engine} all-reduce works in place on contiguous memory; the tensor of shape [{string.Join(", ", tensor.shape)}] has strides " +
                $"[{string.Join(", ", tensor.stride())}]: reduce a .contiguous() copy and copy it back",
                nameof(tensor));
        }
    }

    internal static int ElementSize(torch.Tensor tensor) => tensor.dtype == torch.ScalarType.Float64 ? 8 : 4;

    /// <summary>
    /// Address of element 0 (host or device memory, wherever the tensor lives): the storage's base plus the tensor's
    /// storage offset (a contiguous slice of a larger tensor starts inside its storage).
    /// </summary>
    internal static IntPtr DataPointer(torch.Tensor tensor)
    {
        IntPtr start;
        if (tensor.dtype == torch.ScalarType.Float64)
        {
            using var storage = tensor.storage<double>();
            start = storage.data_ptr();
        }
        else
        {
            using var storage = tensor.storage<float>();
            start = storage.data_ptr();
        }

        return start + checked((nint)(tensor.storage_offset() * ElementSize(tensor)));
    }
}
