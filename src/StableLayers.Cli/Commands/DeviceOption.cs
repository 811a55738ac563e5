using System.CommandLine;
using StableLayers.Model;

namespace StableLayers.Cli.Commands;

/// <summary>The <c>--device</c> option shared by the commands that run the model.</summary>
public static class DeviceOption
{
    public const string Name = "--device";

    public static Option<string?> Create() => new(Name) { Description = $"Where tensors live: {ComputeDevice.Choices}" };

    /// <summary>The parsed and checked device: the option when given, else the default (CUDA when present, else the CPU).</summary>
    public static ComputeDevice Resolve(ParseResult parse, Option<string?> option) => ResolveGiven(parse, option) ?? ComputeDevice.Default();

    /// <summary>The option's device, parsed and checked, or null when the option is absent (a config may then decide).</summary>
    public static ComputeDevice? ResolveGiven(ParseResult parse, Option<string?> option)
    {
        ArgumentNullException.ThrowIfNull(parse);
        string? value = parse.GetValue(option);
        return value is null ? null : ComputeDevice.Parse(value, Name);
    }
}

/// <summary>The <c>--dtype</c> option of the commands that load a model: the weights' compute dtype.</summary>
public static class DTypeOption
{
    public const string Name = "--dtype";

    public static Option<string?> Create() => new(Name)
    {
        Description = "Compute dtype of the weights: float32, bfloat16 or float16 (default: bfloat16 on CUDA, float32 on the CPU); latents, schedule and log-probabilities stay float32",
    };

    /// <summary>The option's dtype, checked against <paramref name="device"/>; absent: bfloat16 on CUDA (as diffusers' users run the released model), float32 on the CPU.</summary>
    public static TorchSharp.torch.ScalarType Resolve(ParseResult parse, Option<string?> option, ComputeDevice device)
    {
        ArgumentNullException.ThrowIfNull(parse);
        ArgumentNullException.ThrowIfNull(device);
        string? value = parse.GetValue(option);
        var dtype = value is null
            ? (device.IsCuda ? TorchSharp.torch.ScalarType.BFloat16 : TorchSharp.torch.ScalarType.Float32)
            : ComputeDevice.ParseDType(value, Name);
        device.CheckDType(dtype, Name);
        return dtype;
    }
}
