using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Weights;

/// <summary>
/// Builds a module with its parameters allocated directly on the target device in the target dtype, so loading a
/// checkpoint never holds a float32 CPU copy of the model first (the released transformer: 82 GB in float32 on the
/// host, against 41 GB in bf16 on the GPU).
/// </summary>
/// <remarks>
/// How: the module is constructed while TorchSharp's default device and default floating-point dtype are set to the
/// target, so every factory call in a constructor that names neither (our modules and TorchSharp's layers alike)
/// allocates there; the defaults are restored afterwards. The random initialisation still runs, on the target.
/// Why not the meta device (allocate nothing, then materialise each parameter from the file, as PyTorch's
/// to_empty/load_state_dict(assign=True) do): in TorchSharp 0.107 construction on meta works, but a meta parameter
/// cannot be given storage - Tensor.set_ with a CPU source throws "Attempted to set the storage of a tensor on
/// device meta to a storage on different device cpu", Module.to(cpu) on a meta-built module is a no-op (the module
/// believes it is on the CPU already), and there is no to_empty or assign-style load; replacing the Parameter
/// objects would mean reaching into TorchSharp's private registration. Meta construction is still useful to check a
/// checkpoint against a module's names and shapes before allocating anything (see <see cref="LayeredModel.Load"/>).
/// TorchSharp's defaults are process-wide, so construction here is serialised, and tensors other threads create
/// without naming a device or dtype during it would land on the target too.
/// </remarks>
public static class ModuleAllocation
{
    private static readonly Lock Gate = new();

    /// <summary>
    /// Runs <paramref name="factory"/> with <paramref name="device"/> and <paramref name="dtype"/> as TorchSharp's
    /// defaults, then moves anything the constructor pinned elsewhere (a no-op for the rest) so that every parameter
    /// and floating-point buffer ends up there. With both null the factory runs unchanged.
    /// </summary>
    public static T Create<T>(Func<T> factory, Device? device = null, ScalarType? dtype = null) where T : nn.Module
    {
        ArgumentNullException.ThrowIfNull(factory);
        if (dtype is { } d && !SafetensorsDType.IsFloating(d))
        {
            throw new ArgumentException($"a module's dtype must be floating-point, not {d}", nameof(dtype));
        }

        if (device is null && dtype is null)
        {
            return factory();
        }

        T module;
        lock (Gate)
        {
            var (oldDevice, oldType) = (get_default_device(), get_default_dtype());
            try
            {
                if (device is not null)
                {
                    set_default_device(device);
                }

                if (dtype is { } t)
                {
                    set_default_dtype(t);
                }

                module = factory();
            }
            finally
            {
                set_default_device(oldDevice);
                set_default_dtype(oldType);
            }
        }

        try
        {
            // Also records the device in TorchSharp's per-module bookkeeping, which a later module.to(...) consults.
            if (device is not null)
            {
                module.to(device);
            }

            if (dtype is { } t)
            {
                module.to(t);
            }

            return module;
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }
}
