using System.CommandLine;
using StableLayers.Core;
using StableLayers.Core.Formats;
using StableLayers.Data.Crello;

namespace StableLayers.Cli.Commands;

/// <summary><c>stable-layers convert IN --out OUT</c>: between PSD, OpenRaster and the layered folder.</summary>
public static class ConvertCommand
{
    public static Command Build()
    {
        var input = new Argument<string>("input") { Description = "A .psd or .ora file, a layered folder, or a Crello .parquet file (one folder per canvas)" };
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
            if (src.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase))
            {
                return ConvertCrello(src, dst, parse.InvocationConfiguration.Output);
            }

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

    /// <summary>Ids come from the file: keep them from naming paths outside the output folder.</summary>
    public static string SafeFolderName(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        var chars = id.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray();
        string name = new string(chars).Trim('.');
        return name.Length == 0 ? "_" : name;
    }

    /// <summary>Crello parquet -> one layered folder per canvas, with LayerD's ground-truth conventions.</summary>
    private static int ConvertCrello(string src, string dstDir, TextWriter stdout)
    {
        if (Path.HasExtension(dstDir) && !Directory.Exists(dstDir))
        {
            throw new BadInputException(dstDir, "a Crello parquet file converts to a folder (one layered folder per canvas); give a folder path");
        }

        int n = 0;
        foreach (var sample in CrelloReader.ReadSamples(src, CrelloOptions.LayerD))
        {
            LayeredFolder.Write(Path.Combine(dstDir, SafeFolderName(sample.Id)), sample.Stack, new LayerSource($"crello {Path.GetFileName(src)} id={sample.Id}", "CDLA-Permissive-2.0"));
            n++;
        }

        stdout.WriteLine($"wrote {n} Crello canvases to {dstDir}");
        return StableLayersCli.ExitOk;
    }
}
