using System.CommandLine;
using System.Globalization;
using StableLayers.Core;
using StableLayers.Data.Synthesis;

namespace StableLayers.Cli.Commands;

/// <summary><c>stable-layers synth --count N --seed S --size 128 --layers 2-5 --out DIR</c>.</summary>
public static class SynthCommand
{
    public static Command Build()
    {
        var count = new Option<int>("--count") { Description = "Number of samples", DefaultValueFactory = _ => 100 };
        var seed = new Option<int>("--seed") { Description = "Dataset seed (sample i of seed S is always the same)", DefaultValueFactory = _ => 0 };
        var size = new Option<int>("--size") { Description = "Canvas side in pixels", DefaultValueFactory = _ => 128 };
        var layers = new Option<string>("--layers") { Description = "Layer count range including the background, e.g. 2-5 or 3", DefaultValueFactory = _ => "2-5" };
        var output = new Option<DirectoryInfo>("--out") { Description = "Output folder (one layered folder per sample)", Required = true };
        var jobs = new Option<int>("--jobs") { Description = "Parallel workers (0 = one per core)", DefaultValueFactory = _ => 0 };
        var cmd = new Command("synth", "Generate procedural layered designs (layered-folder format with captions)")
        {
            count, seed, size, layers, output, jobs,
        };
        cmd.SetAction(parse =>
        {
            StableLayersCli.ApplyGlobalOptions(parse);
            var (lo, hi) = ParseRange(parse.GetRequiredValue(layers));
            int n = parse.GetValue(count);
            if (n < 1)
            {
                throw new BadInputException("--count", $"must be at least 1, got {n}");
            }

            var options = new SynthOptions { Size = parse.GetValue(size), Seed = parse.GetValue(seed), MinLayers = lo, MaxLayers = hi };
            try
            {
                options.Validate();
            }
            catch (ArgumentException e)
            {
                throw new BadInputException("synth options", e.Message.Split(" (Parameter")[0]);
            }

            var outDir = parse.GetRequiredValue(output).FullName;
            var err = parse.InvocationConfiguration.Error;
            var progress = new ProgressLine(err, n);
            int j = parse.GetValue(jobs);
            var stats = SynthGenerator.WriteDataset(outDir, n, options, new SyncProgress<int>(i => progress.Report($"[{i}/{n}] samples written")), j > 0 ? j : -1);
            var byCount = string.Join(", ", stats.SamplesByLayerCount.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key} layers: {kv.Value}"));
            parse.InvocationConfiguration.Output.WriteLine(
                $"wrote {stats.Count} samples to {outDir} in {stats.Elapsed.TotalSeconds:F1}s ({stats.SamplesPerSecond:F1} samples/s); {byCount}");
            return StableLayersCli.ExitOk;
        });
        return cmd;
    }

    /// <summary>"2-5" -> (2,5); "3" -> (3,3).</summary>
    public static (int Min, int Max) ParseRange(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split('-', StringSplitOptions.TrimEntries);
        if (parts.Length is 1 or 2
            && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int lo)
            && int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out int hi)
            && lo <= hi)
        {
            return (lo, hi);
        }

        throw new BadInputException("--layers", $"expected a range like 2-5, got '{text}'");
    }
}
