using System.Globalization;
using StableLayers.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model;

/// <summary>What this process's libtorch can reach: whether it has CUDA kernels at all, and how many CUDA devices it sees.</summary>
/// <param name="CudaBuild">The CUDA libtorch is installed beside the program (built with <c>-p:TorchBackend=cuda</c>).</param>
/// <param name="DeviceCount">CUDA devices libtorch sees (0 on a CPU build or without a driver).</param>
public sealed record CudaInfo(bool CudaBuild, int DeviceCount)
{
    /// <summary>This process: libtorch_cuda.so next to the program marks a CUDA build; libtorch counts the devices.</summary>
    public static CudaInfo Current()
    {
        bool build = File.Exists(Path.Combine(AppContext.BaseDirectory, "libtorch_cuda.so"))
            || File.Exists(Path.Combine(AppContext.BaseDirectory, "torch_cuda.dll"));
        int count = torch.cuda.is_available() ? torch.cuda.device_count() : 0;
        return new CudaInfo(build || count > 0, count);
    }
}

/// <summary>
/// Where a run's tensors live: the CPU or one CUDA device. Parsed once from <c>--device</c> (or a config's
/// <c>device</c> key) and checked against the machine, so a device that cannot be used fails before any loading.
/// </summary>
/// <param name="Type">CPU or CUDA.</param>
/// <param name="Index">The CUDA ordinal (cuda:N); -1 for the CPU.</param>
public sealed record ComputeDevice(DeviceType Type, int Index)
{
    /// <summary>The accepted spellings, for help texts.</summary>
    public const string Choices = "cpu, cuda or cuda:N (default: cuda when a CUDA device is present, else cpu)";

    public static ComputeDevice Cpu { get; } = new(DeviceType.CPU, -1);

    public bool IsCuda => Type == DeviceType.CUDA;

    /// <summary>The TorchSharp device.</summary>
    public Device Torch => IsCuda ? new Device(DeviceType.CUDA, Index) : CPU;

    /// <summary>The device a tensor or module is on (a CUDA device without an ordinal is cuda:0).</summary>
    public static ComputeDevice Of(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return device.type switch
        {
            DeviceType.CPU => Cpu,
            DeviceType.CUDA => new ComputeDevice(DeviceType.CUDA, Math.Max(0, device.index)),
            _ => new ComputeDevice(device.type, device.index),
        };
    }

    /// <summary>CUDA device 0 when this process sees one, else the CPU.</summary>
    public static ComputeDevice Default(CudaInfo? cuda = null) =>
        (cuda ?? CudaInfo.Current()).DeviceCount > 0 ? new ComputeDevice(DeviceType.CUDA, 0) : Cpu;

    /// <summary>
    /// Parses <paramref name="value"/> (null, empty or "auto": <see cref="Default"/>) and checks that the device
    /// exists; problems are <see cref="BadInputException"/>s naming <paramref name="option"/>.
    /// </summary>
    public static ComputeDevice Parse(string? value, string option = "--device", CudaInfo? cuda = null)
    {
        var info = cuda ?? CudaInfo.Current();
        string text = (value ?? string.Empty).Trim().ToLowerInvariant();
        if (text is "" or "auto")
        {
            return Default(info);
        }

        ComputeDevice device;
        if (text == "cpu")
        {
            return Cpu;
        }
        else if (text == "cuda")
        {
            device = new ComputeDevice(DeviceType.CUDA, 0);
        }
        else if (text.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(text.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out int index))
        {
            device = new ComputeDevice(DeviceType.CUDA, index);
        }
        else
        {
            throw new BadInputException(option, $"unknown device '{value}' ({Choices})");
        }

        if (!info.CudaBuild)
        {
            throw new BadInputException(option,
                $"{device} asked for, but this build has the CPU-only libtorch; rebuild with `dotnet build -c Release -p:TorchBackend=cuda` on a Linux x64 machine with an NVIDIA driver (README 'On a GPU'), or use --device cpu");
        }

        if (info.DeviceCount == 0)
        {
            throw new BadInputException(option, $"{device} asked for, but libtorch sees no CUDA device (is the NVIDIA driver installed and the GPU visible, e.g. CUDA_VISIBLE_DEVICES?)");
        }

        if (device.Index >= info.DeviceCount)
        {
            throw new BadInputException(option,
                $"{device} does not exist: this machine has {info.DeviceCount} CUDA device{(info.DeviceCount == 1 ? "" : "s")} (cuda:0{(info.DeviceCount > 1 ? $"..cuda:{info.DeviceCount - 1}" : "")})");
        }

        return device;
    }

    /// <summary>Whether <paramref name="value"/> is spelled as a device (auto, cpu, cuda, cuda:N), whatever this machine has.</summary>
    public static bool IsWellFormed(string? value)
    {
        string text = (value ?? string.Empty).Trim().ToLowerInvariant();
        return text is "" or "auto" or "cpu" or "cuda"
            || (text.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(text.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out _));
    }

    /// <summary>float32, bfloat16 or float16 (also fp32, bf16, fp16).</summary>
    public static ScalarType ParseDType(string? value, string option = "--dtype") =>
        (value ?? string.Empty).Trim().ToLowerInvariant() switch
        {
            "float32" or "fp32" => ScalarType.Float32,
            "bfloat16" or "bf16" => ScalarType.BFloat16,
            "float16" or "fp16" => ScalarType.Float16,
            _ => throw new BadInputException(option, $"unknown dtype '{value}' (float32, bfloat16 or float16)"),
        };

    /// <summary>
    /// Throws a <see cref="BadInputException"/> naming <paramref name="option"/> when this device cannot compute in
    /// <paramref name="dtype"/>: float16 on the CPU (libtorch's CPU half-precision kernels are incomplete, e.g. for
    /// 3D convolutions), or a dtype a tiny matmul on the device rejects (bfloat16 on GPUs that lack it).
    /// </summary>
    public void CheckDType(ScalarType dtype, string option = "--dtype")
    {
        if (dtype is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16))
        {
            throw new BadInputException(option, $"{dtype} is not a compute dtype (float32, bfloat16 or float16)");
        }

        if (!IsCuda && dtype == ScalarType.Float16)
        {
            throw new BadInputException(option, "float16 is not supported on the CPU (libtorch's CPU half-precision kernels are incomplete); use bfloat16 or float32");
        }

        if (dtype == ScalarType.Float32)
        {
            return;
        }

        try
        {
            using var scope = NewDisposeScope();
            var a = ones([2, 2], dtype: dtype, device: Torch);
            _ = a.matmul(a);
        }
        catch (Exception e) when (e is not BadInputException)
        {
            throw new BadInputException(option, $"{this} cannot compute in {dtype}: {e.Message.Split('\n')[0]}");
        }
    }

    /// <summary>A seeded generator on this device (CUDA noise differs from CPU noise for the same seed; each is reproducible).</summary>
    public Generator Generator(ulong seed) => IsCuda ? new Generator(seed, Torch) : new Generator(seed);

    public override string ToString() => IsCuda ? $"cuda:{Index}" : "cpu";
}
