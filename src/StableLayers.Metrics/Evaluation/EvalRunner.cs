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

        var ids = SampleIds(predDir);
        if (ids.Count == 0)
        {
            throw new BadInputException(predDir, "no sample sub-folders (each sample is a layered folder: layer_*.png + layers.json)");
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
                results[i] = EvaluateSample(id, Path.Combine(predDir, id), gtDir is null ? null : Path.Combine(gtDir, id));
            }
            catch (BadInputException e)
            {
                failures.Add(new EvalFailure(id, e.Message));
            }

            progress?.Report($"[{Interlocked.Increment(ref done)}/{ids.Count}] {id}");
        });

        if (gtDir is not null)
        {
            foreach (var missing in SampleIds(gtDir).Except(ids, StringComparer.Ordinal))
            {
                failures.Add(new EvalFailure(missing, $"{Path.Combine(predDir, missing)}: no prediction for this ground-truth sample"));
            }
        }

        return EvalReport.Build(results.OfType<SampleMetrics>().ToList(), failures.ToList());
    }

    public static SampleMetrics EvaluateSample(string id, string predSampleDir, string? gtSampleDir)
    {
        var pred = LayeredFolder.Read(predSampleDir);
        if (gtSampleDir is null)
        {
            return DecompositionEvaluator.Evaluate(id, pred, null, LayeredFolder.ReadInput(predSampleDir));
        }

        if (!Directory.Exists(gtSampleDir))
        {
            throw new BadInputException(gtSampleDir, "no ground-truth folder for this prediction");
        }

        var gt = LayeredFolder.Read(gtSampleDir);
        RgbaImage input = LayeredFolder.ReadComposite(gtSampleDir) ?? gt.FlattenOnWhite();
        return DecompositionEvaluator.Evaluate(id, pred, gt, input);
    }

    private static List<string> SampleIds(string dir) =>
        Directory.GetDirectories(dir)
            .Select(Path.GetFileName)
            .OfType<string>()
            .Where(n => !n.StartsWith('_') && !n.StartsWith('.'))
            .Where(n => LayeredFolder.IsLayeredFolder(Path.Combine(dir, n)))
            .Order(StringComparer.Ordinal)
            .ToList();
}
