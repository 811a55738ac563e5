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
