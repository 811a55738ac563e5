using StableLayers.Core;
using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;

namespace StableLayers.Metrics.Evaluation;

/// <summary>Evaluates a folder of predicted layered folders, matched by sub-folder name to ground truth.</summary>
public static class EvalRunner
{
    /// <summary>
    /// Runs every sample in parallel. A sample that cannot be read or evaluated is reported in
    /// <see cref="EvalReport.Failures"/> and the rest are still evaluated.
    /// </summary>
    public static EvalReport Run(string predDir, string? gtDir, int maxParallel = 0, IProgress<string>? progress = null)
    {
        if (!Directory.Exists(predDir))
        {
            throw new BadInputException(predDir, "prediction folder not found");
        }

        if (gtDir is not null && !Directory.Exists(gtDir))
        {
            throw new BadInputException(gtDir, "ground-truth folder not found");
        }

        var predSamples = Samples(predDir);
        var gtSamples = gtDir is null ? null : Samples(gtDir);
        var ids = predSamples.Keys.Order(StringComparer.Ordinal).ToList();
        if (ids.Count == 0)
        {
            throw new BadInputException(predDir, "no samples (each sample is a layered folder with layer_*.png + layers.json, or a .psd/.ora file)");
        }

        var results = new SampleMetrics?[ids.Count];
        var failures = new System.Collections.Concurrent.ConcurrentBag<EvalFailure>();
        var options = new ParallelOptions { MaxDegreeOfParallelism = maxParallel > 0 ? maxParallel : Environment.ProcessorCount };
        int done = 0;
        Parallel.For(0, ids.Count, options, i =>
        {
            string id = ids[i];
            try
            {
                string? gtPath = null;
                if (gtSamples is not null && !gtSamples.TryGetValue(id, out gtPath))
                {
                    throw new BadInputException(Path.Combine(gtDir!, id), "no ground truth for this prediction");
                }

                results[i] = EvaluateSample(id, predSamples[id], gtPath);
            }
            catch (BadInputException e)
            {
                failures.Add(new EvalFailure(id, e.Message));
            }

            progress?.Report($"[{Interlocked.Increment(ref done)}/{ids.Count}] {id}");
        });

        if (gtSamples is not null)
        {
            foreach (var missing in gtSamples.Keys.Except(ids, StringComparer.Ordinal))
            {
                failures.Add(new EvalFailure(missing, $"{Path.Combine(predDir, missing)}: no prediction for this ground-truth sample"));
            }
        }

        return EvalReport.Build(results.OfType<SampleMetrics>().ToList(), failures.ToList());
    }

    /// <summary>Evaluates one sample; each path is a layered folder, a .psd or an .ora file.</summary>
    public static SampleMetrics EvaluateSample(string id, string predPath, string? gtPath)
    {
        var pred = LayeredFile.Read(predPath);
        if (gtPath is null)
        {
            return DecompositionEvaluator.Evaluate(id, pred, null, Directory.Exists(predPath) ? LayeredFolder.ReadInput(predPath) : null);
        }

        // Ground truth follows the convention of an opaque layer 0 (a white one is added when missing).
        var gt = LayeredFile.Read(gtPath, addWhiteBackground: true);
        RgbaImage input = (Directory.Exists(gtPath) ? LayeredFolder.ReadComposite(gtPath) : null) ?? gt.FlattenOnWhite();
        return DecompositionEvaluator.Evaluate(id, pred, gt, input);
    }

    /// <summary>Samples of a folder by id: layered sub-folders by name, .psd/.ora files by file stem.</summary>
    public static Dictionary<string, string> Samples(string dir)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var sub in Directory.GetDirectories(dir))
        {
            string name = Path.GetFileName(sub);
            if (!name.StartsWith('_') && !name.StartsWith('.') && LayeredFolder.IsLayeredFolder(sub))
            {
                result[name] = sub;
            }
        }

        foreach (var file in Directory.GetFiles(dir))
        {
            string ext = Path.GetExtension(file).ToLowerInvariant();
            if (ext is ".psd" or ".ora")
            {
                string id = Path.GetFileNameWithoutExtension(file);
                if (!result.TryAdd(id, file))
                {
                    throw new BadInputException(file, $"sample id '{id}' is given twice ({result[id]})");
                }
            }
        }

        return result;
    }
}
