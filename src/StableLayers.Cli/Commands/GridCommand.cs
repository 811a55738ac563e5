using System.CommandLine;
using StableLayers.Core;
using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;

namespace StableLayers.Cli.Commands;

/// <summary><c>stable-layers grid DIR --out grid.png [--max 8]</c>: a contact sheet of layered samples (input, then each layer on a checkerboard).</summary>
public static class GridCommand
{
    public static Command Build()
    {
        var input = new Argument<DirectoryInfo>("samples") { Description = "Folder of layered samples (e.g. decompose output)" };
        var output = new Option<FileInfo>("--out") { Description = "PNG file to write", Required = true };
        var max = new Option<int>("--max") { Description = "Rows at most", DefaultValueFactory = _ => 8 };
        var cell = new Option<int>("--cell") { Description = "Cell size in pixels", DefaultValueFactory = _ => 96 };
        var cmd = new Command("grid", "Render a contact sheet of layered samples") { input, output, max, cell };
        cmd.SetAction(parse =>
        {
            StableLayersCli.ApplyGlobalOptions(parse);
            string dir = parse.GetRequiredValue(input).FullName;
            if (!Directory.Exists(dir))
            {
                throw new BadInputException(dir, "folder not found");
            }

            var rows = Directory.GetDirectories(dir).Where(LayeredFolder.IsLayeredFolder).Order(StringComparer.Ordinal)
                .Take(Math.Max(1, parse.GetValue(max)))
                .Select(d => (LayeredFolder.ReadInput(d) ?? LayeredFolder.ReadComposite(d), LayeredFolder.Read(d)))
                .ToList();
            if (rows.Count == 0)
            {
                throw new BadInputException(dir, "no layered samples");
            }

            string path = parse.GetRequiredValue(output).FullName;
            PngCodec.Write(path, LayerGrid.Render(rows, parse.GetValue(cell)));
            parse.InvocationConfiguration.Output.WriteLine($"wrote {path} ({rows.Count} rows)");
            return StableLayersCli.ExitOk;
        });
        return cmd;
    }
}
