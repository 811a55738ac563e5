using System.CommandLine;
using StableLayers.Model;

namespace StableLayers.Cli.Commands;

/// <summary>The <c>--device</c> option shared by the commands that run the model.</summary>
public static class DeviceOption
{
    public const string Name = "--device";

    public static Option<string?> Create() => new(Name) { Description = $"Where tensors live: {ComputeDevice.Choices}" };

    /// <summary>The parsed and checked device: the option when given, else <paramref name="fallback"/> (a config's key, named by <paramref name="fallbackName"/>), else the default.</summary>
    public static ComputeDevice Resolve(ParseResult parse, Option<string?> option, string? fallback = null, string? fallbackName = null)
    {
        ArgumentNullException.ThrowIfNull(parse);
        string? value = parse.GetValue(option);
        return value is not null
            ? ComputeDevice.Parse(value, Name)
            : ComputeDevice.Parse(fallback, fallbackName ?? Name);
    }
}
