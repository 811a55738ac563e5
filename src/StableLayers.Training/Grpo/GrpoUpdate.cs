using StableLayers.Model;
using StableLayers.Model.Lora;
using StableLayers.Model.Schedulers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Training.Grpo;

/// <summary>The update's statistics for one optimizer step (ratio statistics are means over trained batches).</summary>
public sealed record UpdateStats(
    double Loss,
    double RatioMean,
    double RatioStd,
    double LogRatioStd,
    double ClipFraction,
    double Kl,
    double GradNorm,
    int TrainedBatches,
    int TrainedSamples,
    bool NonFinite,
    IReadOnlyList<double> FirstLogRatios)
{
    /// <summary>A step whose update was skipped because something was not finite.</summary>
    public static UpdateStats Skipped { get; } = new(double.NaN, double.NaN, double.NaN, double.NaN, double.NaN, 0, double.NaN, 0, 0, true, []);
}

/// <summary>How the loss is formed (from <see cref="GrpoConfig.GrpoSection"/>).</summary>
public sealed record UpdateSettings(RatioMode Mode, double RescaleExponent, double ClipRange, double KlBeta, bool StepWeight, double GradClip);

/// <summary>
/// One GRPO optimizer step: for every group with a reward spread and every stored window step, recompute the
/// policy's mean on the stored x_t (same batch, same code path as sampling), form log r, the clipped surrogate
/// with the group's advantages (+ optional KL to the LoRA-disabled reference and 1/|dt| weight), and
/// accumulate gradients; then clip the gradient norm and step AdamW. Non-finite loss or gradients skip the step.
/// </summary>
public static class GrpoUpdate
{
    /// <summary>
    /// Splits the groups into <paramref name="minibatches"/> consecutive mini-batches with an optimizer step each;
    /// statistics are averaged over the mini-batches that trained. The first mini-batch is exactly on-policy.
    /// </summary>
    public static UpdateStats RunMinibatches(
        IReadOnlyList<GroupRollout> groups,
        IReadOnlyList<IReadOnlyList<double?>> advantages,
        LoraAdapters adapters,
        AdamW optimizer,
        UpdateSettings settings,
        int minibatches)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(advantages);
        int parts = Math.Clamp(minibatches, 1, Math.Max(1, groups.Count));
        var results = new List<UpdateStats>();
        for (int p = 0; p < parts; p++)
        {
            int from = p * groups.Count / parts, to = (p + 1) * groups.Count / parts;
            var r = Run(groups.Skip(from).Take(to - from).ToList(), advantages.Skip(from).Take(to - from).ToList(), adapters, optimizer, settings);
            results.Add(r);
            if (r.NonFinite)
            {
                break;
            }
        }

        var trained = results.Where(r => r.TrainedBatches > 0).ToList();
        if (trained.Count == 0)
        {
            return results.FirstOrDefault(r => r.NonFinite) ?? results[0];
        }

        double Avg(Func<UpdateStats, double> f) => trained.Average(f);
        return new UpdateStats(
            trained.Sum(r => r.Loss), Avg(r => r.RatioMean), Avg(r => r.RatioStd), Avg(r => r.LogRatioStd), Avg(r => r.ClipFraction),
            Avg(r => r.Kl), Avg(r => r.GradNorm), trained.Sum(r => r.TrainedBatches), trained.Sum(r => r.TrainedSamples),
            results.Any(r => r.NonFinite), trained[0].FirstLogRatios);
    }

    public static UpdateStats Run(
        IReadOnlyList<GroupRollout> groups,
        IReadOnlyList<IReadOnlyList<double?>> advantages,
        LoraAdapters adapters,
        AdamW optimizer,
        UpdateSettings settings)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(advantages);
        ArgumentNullException.ThrowIfNull(adapters);
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(settings);

        // Only groups with a non-zero advantage carry a gradient; the rest are skipped, not computed.
        var trained = Enumerable.Range(0, groups.Count)
            .Where(g => advantages[g].Any(a => a is { } v && v != 0.0))
            .ToList();
        int terms = trained.Sum(g => groups[g].Transitions.Count);
        optimizer.zero_grad();
        if (terms == 0)
        {
            return new UpdateStats(0, 1, 0, 0, 0, 0, 0, 0, 0, false, []);
        }

        // Everything the step logs stays on the device until one transfer at the end: per term (loss, KL / terms,
        // surrogate statistics), the first term's log-ratios and the gradient norm. Terms are summed on the host in
        // order, up to the first non-finite loss, exactly as when each was read on its own.
        var parameters = adapters.TrainableParameters();
        double[] host;
        var keptCounts = new List<int>(terms);
        int rowCount, firstCount;
        using (NewDisposeScope())
        {
            var rows = new List<Tensor>(terms);
            Tensor? firstLogR = null;
            foreach (int g in trained)
            {
                var group = groups[g];
                long[] keep = Enumerable.Range(0, advantages[g].Count).Where(i => advantages[g][i] is not null).Select(i => (long)i).ToArray();
                double[] a = keep.Select(i => advantages[g][(int)i]!.Value).ToArray();
                foreach (var step in group.Transitions)
                {
                    using var scope = NewDisposeScope();
                    var device = step.X.device;
                    var index = tensor(keep, device: device);
                    var v = group.Conditioning.Velocity(step.X, (float)step.Sigma);
                    var muTheta = SdeStep.Mean(step.X, v, step.Coefficients);
                    var logR = LogRatio.Compute(settings.Mode, muTheta, step, settings.RescaleExponent).index_select(0, index);
                    var surrogate = ClippedSurrogate.ComputeOnDevice(logR, tensor(a, dtype: ScalarType.Float64, device: device), settings.ClipRange);
                    Tensor? klTerm = null;
                    var klPart = zeros(1, dtype: ScalarType.Float64, device: device);
                    if (settings.KlBeta != 0.0)
                    {
                        klTerm = GrpoLoss.ReferenceKl(muTheta.index_select(0, index), ReferenceMean(group, step, adapters).index_select(0, index), step.Coefficients.SigmaT);
                        klPart = klTerm.detach().to(ScalarType.Float64).reshape(1).div(terms);
                    }

                    double weight = settings.StepWeight ? GrpoLoss.InverseDtWeight(step.Coefficients) : 1.0;
                    var total = GrpoLoss.Total(surrogate.Loss, klTerm, settings.KlBeta, weight).div(terms);
                    total.backward();
                    firstLogR ??= logR.detach().to(ScalarType.Float64).MoveToOuterDisposeScope();
                    var s = surrogate.Stats.div(terms);
                    rows.Add(cat([total.detach().to(ScalarType.Float64).reshape(1), klPart, s.narrow(0, 1, 3), s.narrow(0, 0, 1)]).MoveToOuterDisposeScope());
                    keptCounts.Add(keep.Length);
                }
            }

            var gradNormTensor = GradientClipping.ClipTotalNorm(parameters, settings.GradClip);
            host = HostReads.ToArray<double>(cat([.. rows, firstLogR!, gradNormTensor.to(ScalarType.Float64).reshape(1)]));
            rowCount = rows.Count;
            firstCount = (int)firstLogR!.shape[0];
        }

        double loss = 0, kl = 0, ratioMean = 0, ratioStd = 0, logStd = 0, clip = 0;
        int samples = 0;
        bool nonFinite = false;
        for (int i = 0; i < rowCount; i++)
        {
            double value = host[i * 6];
            if (!double.IsFinite(value))
            {
                nonFinite = true;
                break;
            }

            loss += value;
            kl += host[(i * 6) + 1];
            ratioMean += host[(i * 6) + 2];
            ratioStd += host[(i * 6) + 3];
            logStd += host[(i * 6) + 4];
            clip += host[(i * 6) + 5];
            samples += keptCounts[i];
        }

        var firstLogRatios = double.IsFinite(host[0]) ? host.Skip(rowCount * 6).Take(firstCount).ToList() : [];
        double gradNorm = nonFinite ? double.NaN : host[^1];
        if (nonFinite || !double.IsFinite(gradNorm))
        {
            optimizer.zero_grad();
            return new UpdateStats(loss, ratioMean, ratioStd, logStd, clip, kl, gradNorm, 0, 0, true, firstLogRatios);
        }

        optimizer.step();
        return new UpdateStats(loss, ratioMean, ratioStd, logStd, clip, kl, gradNorm, terms, samples, false, firstLogRatios);
    }

    /// <summary>The reference policy's mean (LoRA disabled), without gradients.</summary>
    private static Tensor ReferenceMean(GroupRollout group, SdeTransition step, LoraAdapters adapters)
    {
        using var noGrad = no_grad();
        adapters.Enabled = false;
        try
        {
            return SdeStep.Mean(step.X, group.Conditioning.Velocity(step.X, (float)step.Sigma), step.Coefficients);
        }
        finally
        {
            adapters.Enabled = true;
        }
    }
}
