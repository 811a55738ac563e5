using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using StableLayers.Core.Layers;
using StableLayers.Data.Synthesis;
using StableLayers.Judges.LayerCount;
using StableLayers.Judges.Rubric;
using StableLayers.Metrics;
using StableLayers.Model;
using StableLayers.Model.Inference;

namespace StableLayers.Benchmarks;

/// <summary>
/// `auto-layers` mode: held-out synthetic designs with known layer counts (synth seed 1000, 2..MAXN layers), each
/// decomposed at every count 2..MAXN (design k with seed k, as `decompose` numbers a folder). Both selection methods
/// run through <see cref="LayerCountSelector"/> on those decompositions (a memoising decomposer, so the judge and the
/// counter see the very same candidates), and every candidate gets best-match and reconstruction L1 against the
/// ground truth. One JSON line per design; bench/experiments/auto_layers.py makes the tables.
/// </summary>
public static class AutoLayers
{
    public static async Task RunAsync(string modelDir, int count, int steps, int maxLayers, string outPath, int threads)
    {
        if (threads > 0)
        {
            // On a shared, overloaded machine one thread per process wastes far less time spinning than two.
            TorchSharp.torch.set_num_threads(threads);
        }

        using var model = LayeredModel.Load(modelDir);
        var decomposer = new LayeredDecomposer(model);
        var synth = new SynthGenerator(new SynthOptions { Size = 64, MinLayers = 2, MaxLayers = maxLayers, Seed = 1000 });
        var range = new LayerCountRange(2, maxLayers);
        var judge = new RubricJudge();
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outPath))!);
        var done = File.Exists(outPath)
            ? File.ReadAllLines(outPath).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("id").GetString()).ToHashSet()
            : [];
        var total = Stopwatch.StartNew();
        for (int k = 0; k < count; k++)
        {
            var sample = synth.Generate(k);
            if (done.Contains(sample.Id))
            {
                continue;
            }

            var sw = Stopwatch.StartNew();
            var input = sample.Stack.FlattenOnWhite();
            var cache = new Dictionary<int, LayerStack>();
            var options = new DecomposeOptions { Steps = steps, Seed = k };
            LayerStack Decompose(int n, CancellationToken ct)
            {
                if (!cache.TryGetValue(n, out var s))
                {
                    s = decomposer.Decompose(input, options with { Layers = n }, ct);
                    cache[n] = s;
                }

                return s;
            }

            var byJudge = await new LayerCountSelector(judge).SelectAsync(input, new LayerCountSettings { Range = range }, Decompose);
            var byCount = await new LayerCountSelector(null).SelectAsync(input, new LayerCountSettings { Range = range, Method = LayerCountMethod.Count }, Decompose);
            var perN = range.Values.ToDictionary(n => n, n =>
            {
                var m = DecompositionEvaluator.Evaluate(sample.Id, cache[n], sample.Stack, input);
                return new
                {
                    reward = byJudge.Candidates.Single(c => c.Layers == n).Reward,
                    distinct = DistinctLayers.Count(cache[n], input),
                    best_match_l1 = m.BestMatchL1,
                    recon_l1 = m.ReconL1,
                    bad_layers = m.BadLayers,
                };
            });
            var line = JsonSerializer.Serialize(new
            {
                id = sample.Id,
                true_n = sample.Stack.Count,
                judge_n = byJudge.Layers,
                count_n = byCount.Layers,
                steps,
                seconds = sw.Elapsed.TotalSeconds,
                per_n = perN.ToDictionary(kv => kv.Key.ToString(CultureInfo.InvariantCulture), kv => (object)kv.Value),
            });
            File.AppendAllText(outPath, line + "\n");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"[{k + 1}/{count}] {sample.Id}: true {sample.Stack.Count}, judge {byJudge.Layers}, count {byCount.Layers} ({sw.Elapsed.TotalSeconds:F0}s, total {total.Elapsed.TotalMinutes:F1} min)"));
        }
    }
}
