using System.CommandLine;
using StableLayers.Core.Formats;

namespace StableLayers.Cli.Commands;

/// <summary><c>stable-layers convert IN --out OUT</c>: between PSD, OpenRaster and the layered folder.</summary>
public static class ConvertCommand
{
    public static Command Build()
    {
        var input = new Argument<string>("input") { Description = "A .psd or .ora file, or a layered folder" };
        var output = new Option<string>("--out") { Description = "Output: a path ending in .psd or .ora, otherwise a layered folder", Required = true };
        var whiteBg = new Option<bool>("--white-background") { Description = "Insert an opaque white layer 0 when the bottom layer does not cover the canvas (the ground-truth convention)" };
        var cmd = new Command("convert", "Convert a layered file between PSD, OpenRaster (.ora) and the layered-folder format")
        {
            input, output, whiteBg,
        };
        cmd.SetAction(parse =>
        {
            StableLayersCli.ApplyGlobalOptions(parse);
            string src = parse.GetRequiredValue(input);
            string dst = parse.GetRequiredValue(output);
            var warnings = LayeredFile.Convert(src, dst, parse.GetValue(whiteBg));
            foreach (var w in warnings)
            {
                parse.InvocationConfiguration.Error.WriteLine($"warning: {w}");
            }

            var stack = LayeredFile.Read(dst);
            parse.InvocationConfiguration.Output.WriteLine($"wrote {dst} ({LayeredFile.DetectForRead(dst)}, {stack.Count} layers, {stack.Width}x{stack.Height})");
            return StableLayersCli.ExitOk;
        });
        return cmd;
    }
}
