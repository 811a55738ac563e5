using System.Diagnostics;
using System.Text.Json.Serialization;
using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Distributed;
using StableLayers.Judges;
using StableLayers.Metrics;
using StableLayers.Model;
using StableLayers.Model.Lora;
using StableLayers.Model.Pipeline;
using StableLayers.Model.Schedulers;
using StableLayers.Model.Transformer;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Training.Grpo;

/// <summary>
/// One Flow-GRPO step, top to bottom in the order of docs/RL.md:
/// <list type="number">
/// <item>sample a group of G candidates per image with the SDE sampler, storing the window steps
/// (<see cref="SampleGroup"/>; the step maths, mean, std and log p, are Model/Schedulers/SdeStep.cs);</item>
/// <item>judge each group;</item>
/// <item>turn rewards into group advantages (<see cref="Advantages"/>);</item>
/// <item>per mini-batch and stored timestep, recompute the policy's mean on the stored x_t and form log r
/// (<see cref="LogRatio(RatioMode, Tensor, SdeTransition, double)"/>, RatioNorm sum-and-rescale by default);</item>
/// <item>assemble the loss, clipped surrogate + beta KL to the LoRA-disabled reference, in <see cref="Loss"/> and
/// nowhere else, and backpropagate it;</item>
/// <item>sum the gradients over data-parallel ranks, clip the gradient norm and step AdamW (<see cref="Update"/>).</item>
/// </list>
/// This file and SdeStep.cs are the whole algorithm; <see cref="GrpoTrainer"/> runs steps, evaluates and checkpoints.
/// Data parallel (<paramref name="communicator"/> with W ranks): each rank samples and judges images i = rank, rank + W,
/// ... of the step with the seeds of the global i, learns every rank's groups and judgements (so advantages and logs are
/// those of one process), trains its own groups inside the same global mini-batches, and the ranks' gradients are summed
/// before the one optimizer step that every rank takes identically.
/// </summary>
public sealed class GrpoStep(GrpoConfig config, IJudge judge, ComputeDevice device, TextWriter log, ICommunicator? communicator = null)
{
    private readonly ICommunicator communicator = communicator ?? SingleProcess.Instance;

    /// <summary>Runs step <paramref name="step"/>: everything random in it is a function of (seed, step, image).</summary>
    public async Task<StepOutcome> RunAsync(LayeredModel model, LoraAdapters adapters, AdamW optimizer, TrainingImages images, int step, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        var s = config.Sampling;
        var rollout = RolloutSettings.Of(s);
        var groups = new List<GroupRollout>();
        var imageIndices = new List<int>();
        int skipped = 0;
        var sw = Stopwatch.StartNew();
        try
        {
            // 1. Sample this rank's images i = rank, rank + W, ... (all of them on one process): per image one layer
            // count N ~ U{min..max}, one SDE window and G candidates in one batch, all seeded by the step's image index i.
            for (int i = communicator.Rank; i < s.ImagesPerStep; i += communicator.WorldSize)
            {
                long position = ((long)step * s.ImagesPerStep) + i;
                TrainingImage image;
                try
                {
                    image = images.At(position);
                }
                catch (BadInputException e)
                {
                    log.WriteLine($"warning: skipped {e.Message}");
                    skipped++;
                    continue;
                }

                var rng = new Random(StepSeeds.ForRandom(config.Seed, step, i));
                int layers = rng.Next(s.MinLayers, s.MaxLayers + 1);
                var window = SdeWindow.Draw(s.Steps, rng, s.SdeWindow);
                groups.Add(SampleGroup(model, image, layers, rollout, window, device.Generator(StepSeeds.ForGenerator(config.Seed, step, i))));
                imageIndices.Add(i);
            }

            double sampling = sw.Elapsed.TotalSeconds;
            sw.Restart();

            // 2. Judge: each group is scored as one set (phase 1, then the grid calibration of phase 2).
            var judged = await Task.WhenAll(groups.Select(g =>
                judge.JudgeAsync(new JudgeGroup($"step{step}/{g.Image.Id}", g.Image.Image, g.Candidates), cancel))).ConfigureAwait(false);
            double judging = sw.Elapsed.TotalSeconds;

            // Every rank's groups and judgements in image order, on every rank: from here the step reads as on one process.
            var ranks = DataParallel.Gather(communicator, new RankShare(skipped, sampling, judging,
                [.. groups.Select((g, k) => ShareOf(model, imageIndices[k], g, judged[k]))]));
            var all = ranks.SelectMany(r => r.Groups).OrderBy(g => g.Image).ToList();
            var positions = imageIndices.Select(i => all.FindIndex(g => g.Image == i)).ToList();

            // 3. Advantages of all the step's groups (so global_std is exact); candidate k of group g keeps index k from
            // sampling through judging to the update.
            var advantages = Advantages([.. all.Select(g => g.Judgement.Rewards)], new AdvantageOptions(config.Grpo.GlobalStd, config.Grpo.AdvantageClip));
            sw.Restart();

            // 4-6. The update of this rank's groups inside the step's mini-batches. A policy that produces non-finite
            // latents on any rank has diverged: its rewards mean nothing.
            bool diverged = all.Any(g => g.NonFinite);
            var shards = new StepShards(communicator, all.Count, positions, [.. all.Select((g, p) => TrainedTerms(advantages.Advantages[p], g.Transitions))]);
            var update = diverged
                ? UpdateStats.Skipped
                : Update(groups, [.. positions.Select(p => advantages.Advantages[p])], adapters, optimizer, UpdateSettings.Of(config), config.Grpo.Minibatches, shards);
            double updating = sw.Elapsed.TotalSeconds;

            return new StepOutcome(
                StepLogOf(step, all, advantages, update, (ranks.Max(r => r.SamplingSeconds), ranks.Max(r => r.JudgingSeconds), updating)),
                ranks.Sum(r => r.Skipped),
                all.Aggregate(JudgeUsage.None, (u, g) => u.Add(g.Judgement.Diagnostics.Usage)),
                [.. groups.Select(g => (g.Image.Image, g.Candidates))]);
        }
        finally
        {
            foreach (var g in groups)
            {
                g.Dispose();
            }
        }
    }

    // ---- 1. Sample ------------------------------------------------------------------------------------------

    /// <summary>
    /// G = <see cref="RolloutSettings.GroupSize"/> candidates of one image with <paramref name="layers"/> layers, sampled
    /// as one batch through the same <see cref="LayeredConditioning.Velocity"/> the update uses: window steps are SDE
    /// steps (stored: x_t, x_t-1, mu_old, eps, log p_old), the rest Euler; the final latents are decoded for the judge.
    /// </summary>
    public static GroupRollout SampleGroup(LayeredModel model, TrainingImage image, int layers, RolloutSettings settings, SdeWindow window, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(settings);
        var conditioning = LayeredConditioning.Create(model, image.Image, layers, [settings.PromptFor(image.Caption)], copies: settings.GroupSize);
        try
        {
            using var scope = NewDisposeScope();
            var noise = conditioning.InitialNoise(generator, settings.GroupSize);
            var sampling = SdeSampling.Sample(noise, conditioning.Schedule(settings.Steps), conditioning.Velocity, window, settings.NoiseLevel, generator, settings.Kind);
            var candidates = conditioning.Decode(sampling.Final);
            sampling.Final.MoveToOuterDisposeScope();
            foreach (var t in sampling.Transitions)
            {
                foreach (var tensor in new[] { t.X, t.XNext, t.MeanOld, t.Eps, t.LogProbOld })
                {
                    tensor.MoveToOuterDisposeScope();
                }
            }

            return new GroupRollout(image, conditioning, window, sampling, candidates);
        }
        catch
        {
            conditioning.Dispose();
            throw;
        }
    }

    // ---- 3. Advantages --------------------------------------------------------------------------------------

    /// <summary>
    /// A = (r - mean_group) / (std + eps), population std (per group, or over all rewards of the step with
    /// <see cref="AdvantageOptions.GlobalStd"/>), clamped to ±<see cref="AdvantageOptions.Clamp"/>. Failed candidates
    /// (null rewards) are dropped and a group continues while at least two remain. A group whose rewards are all equal
    /// (max == min, not std == 0: a mean of equal values can round) gets exactly 0 and is counted in
    /// <see cref="AdvantageResult.ZeroStdGroups"/>. The result has the shape of <paramref name="rewards"/>.
    /// </summary>
    public static AdvantageResult Advantages(IReadOnlyList<IReadOnlyList<double?>> rewards, AdvantageOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(rewards);
        options ??= new AdvantageOptions();
        if (!(options.Clamp > 0) || !(options.Epsilon > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options, "clamp and epsilon must be positive");
        }

        int failed = 0;
        var valid = new List<double[]?>(rewards.Count);
        foreach (var group in rewards)
        {
            ArgumentNullException.ThrowIfNull(group, nameof(rewards));
            var ok = new List<double>(group.Count);
            foreach (var r in group)
            {
                if (r is not { } value)
                {
                    failed++;
                    continue;
                }

                if (!double.IsFinite(value))
                {
                    throw new ArgumentException($"reward {value} is not finite; report a failed candidate as null", nameof(rewards));
                }

                ok.Add(value);
            }

            valid.Add(ok.Count >= 2 ? [.. ok] : null);
        }

        var used = valid.Where(v => v is not null).Select(v => v!).ToList();
        double globalStd = options.GlobalStd && used.Count > 0 ? PopulationStd(used.SelectMany(v => v).ToArray()) : double.NaN;

        int zeroStd = 0;
        double stdSum = 0;
        var advantages = new List<IReadOnlyList<double?>>(rewards.Count);
        for (int g = 0; g < rewards.Count; g++)
        {
            var group = rewards[g];
            var ok = valid[g];
            var result = new double?[group.Count];
            if (ok is not null)
            {
                double mean = ok.Average();
                double groupStd = PopulationStd(ok);
                stdSum += groupStd;
                bool flat = ok.Max() == ok.Min();
                if (flat)
                {
                    zeroStd++;
                }

                double std = options.GlobalStd ? globalStd : groupStd;
                for (int i = 0; i < group.Count; i++)
                {
                    if (group[i] is { } r)
                    {
                        result[i] = flat ? 0.0 : Math.Clamp((r - mean) / (std + options.Epsilon), -options.Clamp, options.Clamp);
                    }
                }
            }

            advantages.Add(result);
        }

        return new AdvantageResult(advantages, used.Count, rewards.Count - used.Count, failed, zeroStd, used.Count == 0 ? 0.0 : stdSum / used.Count);
    }

    /// <summary>sqrt(mean((r - mean r)^2)), numpy's default std.</summary>
    public static double PopulationStd(IReadOnlyCollection<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0)
        {
            throw new ArgumentException("no values", nameof(values));
        }

        double mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / values.Count);
    }

    // ---- 4-6. Update ----------------------------------------------------------------------------------------

    /// <summary>
    /// Splits the groups into <paramref name="minibatches"/> consecutive mini-batches with an optimizer step each
    /// (Flow-GRPO's train batches); statistics are averaged over the mini-batches that trained. The first mini-batch
    /// is exactly on-policy; later ones are off-policy by the updates before them, which is what the ratio and its
    /// clipping are for. Data parallel, the mini-batches are ranges of the groups on all ranks (<paramref name="shards"/>;
    /// default: all groups are local) and every rank takes part in each, with or without groups of its own in it.
    /// </summary>
    public static UpdateStats Update(
        IReadOnlyList<GroupRollout> groups,
        IReadOnlyList<IReadOnlyList<double?>> advantages,
        LoraAdapters adapters,
        AdamW optimizer,
        UpdateSettings settings,
        int minibatches = 1,
        StepShards? shards = null)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(advantages);
        shards ??= StepShards.Local(groups, advantages);
        int n = shards.GroupCount;
        int parts = Math.Clamp(minibatches, 1, Math.Max(1, n));
        var results = new List<UpdateStats>();
        for (int p = 0; p < parts; p++)
        {
            int from = p * n / parts, to = (p + 1) * n / parts;
            var local = Enumerable.Range(0, groups.Count).Where(g => shards.Positions[g] >= from && shards.Positions[g] < to).ToList();
            var shard = new MinibatchShard(shards.Communicator, shards.TrainedTerms.Skip(from).Take(to - from).Sum(), [.. local.Select(g => shards.Positions[g])]);
            var r = UpdateMinibatch([.. local.Select(g => groups[g])], [.. local.Select(g => advantages[g])], adapters, optimizer, settings, shard);
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

    /// <summary>
    /// One optimizer step on <paramref name="groups"/>: for every group with a reward spread and every stored timestep,
    /// recompute mu_theta on the stored x_t (same batch, same code path as sampling), form log r and the loss, and
    /// accumulate gradients; then sum them over the ranks, clip the gradient norm and step AdamW. A non-finite loss or
    /// gradient on any rank skips the step on every rank.
    /// </summary>
    public static UpdateStats UpdateMinibatch(
        IReadOnlyList<GroupRollout> groups,
        IReadOnlyList<IReadOnlyList<double?>> advantages,
        LoraAdapters adapters,
        AdamW optimizer,
        UpdateSettings settings) => UpdateMinibatch(groups, advantages, adapters, optimizer, settings, null);

    /// <summary>
    /// <see cref="UpdateMinibatch(IReadOnlyList{GroupRollout}, IReadOnlyList{IReadOnlyList{double?}}, LoraAdapters, AdamW, UpdateSettings)"/>
    /// for this rank's <paramref name="groups"/> of a mini-batch spread over the ranks (<paramref name="shard"/>; null:
    /// one process). Every rank of the run calls it for every mini-batch, also with no groups of its own.
    /// </summary>
    public static UpdateStats UpdateMinibatch(
        IReadOnlyList<GroupRollout> groups,
        IReadOnlyList<IReadOnlyList<double?>> advantages,
        LoraAdapters adapters,
        AdamW optimizer,
        UpdateSettings settings,
        MinibatchShard? shard)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(advantages);
        ArgumentNullException.ThrowIfNull(adapters);
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(settings);

        // Only groups with a non-zero advantage are computed (with kl_beta > 0 a flat group would only pull towards
        // the reference; it is skipped like the rest). The loss is a mean over the mini-batch's stored timesteps on
        // all ranks, so that the ranks' gradients add up to the one-process gradient.
        var trained = Enumerable.Range(0, groups.Count)
            .Where(g => TrainedTerms(advantages[g], groups[g].Transitions.Count) > 0)
            .ToList();
        int terms = shard?.Terms ?? trained.Sum(g => groups[g].Transitions.Count);
        var communicator = shard?.Communicator ?? SingleProcess.Instance;
        optimizer.zero_grad();
        if (terms == 0)
        {
            return new UpdateStats(0, 1, 0, 0, 0, 0, 0, 0, 0, false, []);
        }

        // Everything the step logs stays on the device until one transfer at the end: per term (loss, KL / terms,
        // surrogate statistics), the first term's log-ratios and the gradient norm. Terms are summed on the host in
        // order (the ranks' terms in the order of their groups), up to the first non-finite loss, exactly as when each
        // was read on its own.
        var parameters = adapters.TrainableParameters();
        double[] host;
        var keptCounts = new List<int>();
        var rowPositions = new List<int>();
        int rowCount, firstCount;
        using (NewDisposeScope())
        {
            var rows = new List<Tensor>();
            Tensor? firstLogR = null;
            foreach (int g in trained)
            {
                var group = groups[g];
                // Candidates without an advantage (failed judgements) are left out; the rest keep their sampling index.
                long[] keep = Enumerable.Range(0, advantages[g].Count).Where(i => advantages[g][i] is not null).Select(i => (long)i).ToArray();
                double[] a = keep.Select(i => advantages[g][(int)i]!.Value).ToArray();
                foreach (var step in group.Transitions)
                {
                    using var scope = NewDisposeScope();
                    var index = tensor(keep, device: step.X.device);

                    // 4. The policy's mean on the stored x_t and log r against the stored mu_old and eps.
                    var muTheta = SdeStep.Mean(step.X, group.Conditioning.Velocity(step.X, (float)step.Sigma), step.Coefficients);
                    var logR = LogRatio(settings.Mode, muTheta, step, settings.RescaleExponent).index_select(0, index);

                    // 5. The loss (the reference's mean only when KL is on), then its gradient.
                    var muRef = settings.KlBeta != 0.0 ? ReferenceMean(group, step, adapters).index_select(0, index) : null;
                    var loss = Loss(
                        logR,
                        tensor(a, dtype: ScalarType.Float64, device: step.X.device),
                        muRef is null ? null : muTheta.index_select(0, index),
                        muRef,
                        step.Coefficients,
                        settings,
                        terms);
                    loss.Total.backward();

                    firstLogR ??= logR.detach().to(ScalarType.Float64).MoveToOuterDisposeScope();
                    var st = loss.Stats.div(terms);
                    rows.Add(cat([loss.Total.detach().to(ScalarType.Float64).reshape(1), loss.KlPart, st.narrow(0, 1, 3), st.narrow(0, 0, 1)]).MoveToOuterDisposeScope());
                    keptCounts.Add(keep.Length);
                    rowPositions.Add(shard is null ? g : shard.Positions[g]);
                }
            }

            // 6. Sum the gradients over the ranks, then clip their norm (kept on the device) before the optimizer step.
            DataParallel.SumGradients(communicator, parameters);
            var gradNormTensor = GradientClipping.ClipTotalNorm(parameters, settings.GradClip);
            host = HostReads.ToArray<double>(cat([.. rows, .. firstLogR is null ? Array.Empty<Tensor>() : [firstLogR], gradNormTensor.to(ScalarType.Float64).reshape(1)]));
            rowCount = rows.Count;
            firstCount = firstLogR is null ? 0 : (int)firstLogR.shape[0];
        }

        // Every rank's rows in the order of the groups, so that every rank logs (and skips) what one process would.
        var local = new TermRows([.. rowPositions], [.. host.Take(rowCount * 6)], [.. keptCounts], [.. host.Skip(rowCount * 6).Take(firstCount)]);
        var all = DataParallel.Gather(communicator, local);
        var order = all.SelectMany((r, rank) => r.Positions.Select((position, i) => (position, rank, i))).OrderBy(x => x.position).ToList();
        double lossSum = 0, kl = 0, ratioMean = 0, ratioStd = 0, logStd = 0, clip = 0;
        int samples = 0;
        bool nonFinite = false;
        foreach (var (_, rank, i) in order)
        {
            var values = all[rank].Values;
            double value = values[i * 6];
            if (!double.IsFinite(value))
            {
                nonFinite = true;
                break;
            }

            lossSum += value;
            kl += values[(i * 6) + 1];
            ratioMean += values[(i * 6) + 2];
            ratioStd += values[(i * 6) + 3];
            logStd += values[(i * 6) + 4];
            clip += values[(i * 6) + 5];
            samples += all[rank].Kept[i];
        }

        var first = order[0];
        var firstLogRatios = double.IsFinite(all[first.rank].Values[first.i * 6]) ? all[first.rank].FirstLogRatios : [];
        double gradNorm = nonFinite ? double.NaN : host[^1];
        if (nonFinite || !double.IsFinite(gradNorm))
        {
            optimizer.zero_grad();
            return new UpdateStats(lossSum, ratioMean, ratioStd, logStd, clip, kl, gradNorm, 0, 0, true, firstLogRatios);
        }

        // 6. The optimizer step.
        optimizer.step();
        return new UpdateStats(lossSum, ratioMean, ratioStd, logStd, clip, kl, gradNorm, terms, samples, false, firstLogRatios);
    }

    /// <summary>The stored timesteps a group trains: all of them with a non-zero advantage somewhere, else none.</summary>
    public static int TrainedTerms(IReadOnlyList<double?> advantages, int transitions)
    {
        ArgumentNullException.ThrowIfNull(advantages);
        return advantages.Any(a => a is { } v && v != 0.0) ? transitions : 0;
    }

    /// <summary>One rank's logged values of a mini-batch: 6 per stored timestep (see the rows above), in its groups' order.</summary>
    private sealed record TermRows(
        [property: JsonPropertyName("positions")] IReadOnlyList<int> Positions,
        [property: JsonPropertyName("values")] IReadOnlyList<double> Values,
        [property: JsonPropertyName("kept")] IReadOnlyList<int> Kept,
        [property: JsonPropertyName("first_log_ratios")] IReadOnlyList<double> FirstLogRatios);

    // ---- 4. Log-ratio ---------------------------------------------------------------------------------------

    /// <summary>log r for a stored step: its mu_old, x', s and eps against <paramref name="muTheta"/>.</summary>
    public static Tensor LogRatio(RatioMode mode, Tensor muTheta, SdeTransition step, double exponent = DefaultRescaleExponent)
    {
        ArgumentNullException.ThrowIfNull(step);
        return LogRatio(mode, muTheta, step.MeanOld, step.XNext, step.Std, step.Eps, exponent);
    }

    /// <summary>The default rescale exponent of <see cref="RatioMode.SumRescale"/>: 1 / sqrt(D).</summary>
    public const double DefaultRescaleExponent = 0.5;

    /// <summary>
    /// Per-sample log importance ratio between the trained policy's step mean mu_theta and the sampling policy's
    /// mu_old, float64, shape [B] (gradients flow into mu_theta); with mu_theta == mu_old every mode gives exactly 0.
    /// Tensors are batch-first with equal shapes; D = elements per sample.
    /// <list type="bullet">
    /// <item>None: mean log p(x' | mu_theta, s) - mean log p(x' | mu_old, s) (the same float64 code as sampling).</item>
    /// <item>GuardMean: D^-1 sum_d eps_d dmu_d, which equals s (mean log p_theta - mean log p_old) + mean(dmu^2) / (2 s).</item>
    /// <item>SumRescale: D^(-<paramref name="exponent"/>) sum_d eps_d dmu_d; exponent 1 is the mean form.</item>
    /// </list>
    /// dmu = mu_theta - mu_old is formed in float64 and multiplied by the stored noise <paramref name="eps"/>
    /// directly (never a difference of two large sums). <paramref name="xNext"/> and <paramref name="std"/> are used by None only.
    /// </summary>
    public static Tensor LogRatio(RatioMode mode, Tensor muTheta, Tensor muOld, Tensor xNext, double std, Tensor eps, double exponent = DefaultRescaleExponent)
    {
        ArgumentNullException.ThrowIfNull(muTheta);
        ArgumentNullException.ThrowIfNull(muOld);
        ArgumentNullException.ThrowIfNull(xNext);
        ArgumentNullException.ThrowIfNull(eps);
        CheckShape(muTheta, muOld, nameof(muOld));
        CheckShape(muTheta, xNext, nameof(xNext));
        CheckShape(muTheta, eps, nameof(eps));
        if (muTheta.dim() < 1)
        {
            throw new ArgumentException("tensors need a batch dimension first", nameof(muTheta));
        }

        using var scope = NewDisposeScope();
        switch (mode)
        {
            case RatioMode.None:
                return SdeStep.LogProb(xNext, muTheta, std).sub(SdeStep.LogProb(xNext, muOld, std)).MoveToOuterDisposeScope();

            case RatioMode.GuardMean:
                return RescaledSum(muTheta, muOld, eps, 1.0).MoveToOuterDisposeScope();

            case RatioMode.SumRescale:
                if (!double.IsFinite(exponent))
                {
                    throw new ArgumentOutOfRangeException(nameof(exponent), exponent, "the rescale exponent must be finite");
                }

                return RescaledSum(muTheta, muOld, eps, exponent).MoveToOuterDisposeScope();

            default:
                throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown ratio mode");
        }
    }

    private static Tensor RescaledSum(Tensor muTheta, Tensor muOld, Tensor eps, double exponent)
    {
        long d = muTheta.dim() <= 1 ? 1 : muTheta.numel() / muTheta.shape[0];
        var dmu = muTheta.to(ScalarType.Float64).sub(muOld.to(ScalarType.Float64));
        var products = eps.to(ScalarType.Float64).mul(dmu);
        var sums = products.dim() == 1 ? products : products.flatten(1).sum(1);
        return sums.mul(Math.Pow(d, -exponent));
    }

    private static void CheckShape(Tensor reference, Tensor other, string name)
    {
        if (!reference.shape.SequenceEqual(other.shape))
        {
            throw new ArgumentException($"[{string.Join(",", other.shape)}] differs from mu_theta's [{string.Join(",", reference.shape)}]", name);
        }
    }

    // ---- 5. Loss --------------------------------------------------------------------------------------------

    /// <summary>
    /// The loss of one stored timestep, assembled here and nowhere else (docs/RL.md "GRPO loss"), in float64:
    /// <code>
    /// policy = mean_b max(-A_b r_b, -A_b clip(r_b, 1 - eps, 1 + eps))      r = exp(log r), eps = clip_range
    /// kl     = mean((mu_theta - mu_ref)^2) / (2 sigma_t^2)                  only when kl_beta != 0
    /// total  = w (policy + kl_beta kl) / terms                              w = 1 / |dt| with step_weight, else 1
    /// </code>
    /// <paramref name="terms"/> (the stored timesteps of the optimizer step) makes the step's gradient the mean over its
    /// timesteps. <paramref name="muTheta"/> and <paramref name="muRef"/> ([B, ...], the reference detached) are needed
    /// only when KL is on. <see cref="StepLoss.Stats"/>: float64 [5] = (clip fraction: share of |r - 1| &gt; eps,
    /// mean r, population std of r, population std of log r, approx KL 0.5 mean((log r)^2) as Flow-GRPO logs it).
    /// </summary>
    public static StepLoss Loss(Tensor logR, Tensor advantages, Tensor? muTheta, Tensor? muRef, SdeCoefficients coefficients, UpdateSettings settings, int terms = 1)
    {
        ArgumentNullException.ThrowIfNull(logR);
        ArgumentNullException.ThrowIfNull(advantages);
        ArgumentNullException.ThrowIfNull(coefficients);
        ArgumentNullException.ThrowIfNull(settings);
        if (logR.dim() != 1 || !logR.shape.SequenceEqual(advantages.shape))
        {
            throw new ArgumentException($"log ratios [{string.Join(",", logR.shape)}] and advantages [{string.Join(",", advantages.shape)}] must both be [B]", nameof(advantages));
        }

        double clipRange = settings.ClipRange;
        if (!(clipRange > 0) || double.IsInfinity(clipRange))
        {
            throw new ArgumentOutOfRangeException(nameof(settings), clipRange, "the clip range must be positive and finite");
        }

        using var scope = NewDisposeScope();

        // The clipped surrogate: the pessimistic (larger) of the unclipped and clipped terms per sample.
        var lr = logR.to(ScalarType.Float64);
        var a = advantages.to(ScalarType.Float64).detach();
        var ratio = lr.exp();
        var unclipped = a.neg().mul(ratio);
        var clipped = a.neg().mul(ratio.clamp(1.0 - clipRange, 1.0 + clipRange));
        var policy = maximum(unclipped, clipped).mean();

        // KL to the reference policy (LoRA disabled), pulling the policy's mean back to the base's.
        Tensor total = policy.alias();
        var klPart = zeros(1, dtype: ScalarType.Float64, device: logR.device);
        if (settings.KlBeta != 0.0)
        {
            var kl = ReferenceKl(
                muTheta ?? throw new ArgumentNullException(nameof(muTheta), "kl_beta != 0 needs mu_theta"),
                muRef ?? throw new ArgumentNullException(nameof(muRef), "kl_beta != 0 needs the reference mean"),
                coefficients.SigmaT);
            total = policy.add(kl.to(policy.dtype), settings.KlBeta);
            klPart = kl.detach().to(ScalarType.Float64).reshape(1).div(terms);
        }

        // GRPO-Guard's optional step reweight, then the mean over the optimizer step's timesteps.
        double weight = settings.StepWeight ? InverseDtWeight(coefficients) : 1.0;
        total = (weight == 1.0 ? total : total.mul(weight)).div(terms);

        Tensor stats;
        using (no_grad())
        {
            var r = ratio.detach();
            var l = lr.detach();
            stats = stack([
                r.sub(1.0).abs().gt(clipRange).to(ScalarType.Float64).mean(),
                r.mean(),
                r.std(unbiased: false),
                l.std(unbiased: false),
                l.square().mean().mul(0.5),
            ]);
        }

        return new StepLoss(total.MoveToOuterDisposeScope(), klPart.MoveToOuterDisposeScope(), stats.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// kl = mean((mu_theta - mu_ref)^2) / (2 sigma_t^2) over every element of the batch, float64 scalar, differentiable
    /// through mu_theta only. sigma_t is <see cref="SdeCoefficients.SigmaT"/>.
    /// </summary>
    public static Tensor ReferenceKl(Tensor muTheta, Tensor muRef, double sigmaT)
    {
        ArgumentNullException.ThrowIfNull(muTheta);
        ArgumentNullException.ThrowIfNull(muRef);
        if (!muTheta.shape.SequenceEqual(muRef.shape))
        {
            throw new ArgumentException($"reference mean [{string.Join(",", muRef.shape)}] differs from mu_theta's [{string.Join(",", muTheta.shape)}]", nameof(muRef));
        }

        if (!(sigmaT > 0) || double.IsInfinity(sigmaT))
        {
            throw new ArgumentOutOfRangeException(nameof(sigmaT), sigmaT, "sigma_t must be positive and finite");
        }

        using var scope = NewDisposeScope();
        var diff = muTheta.to(ScalarType.Float64).sub(muRef.to(ScalarType.Float64).detach());
        return diff.square().mean().div(2.0 * sigmaT * sigmaT).MoveToOuterDisposeScope();
    }

    /// <summary>The reference policy's mean: the same step with the LoRA adapters disabled (the base model), without gradients.</summary>
    public static Tensor ReferenceMean(GroupRollout group, SdeTransition step, LoraAdapters adapters)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(adapters);
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

    /// <summary>GRPO-Guard's optional step reweight 1 / |dt| = 1 / (sigma - sigma').</summary>
    public static double InverseDtWeight(SdeCoefficients coefficients)
    {
        ArgumentNullException.ThrowIfNull(coefficients);
        double dt = Math.Abs(coefficients.Dt);
        if (!(dt > 0))
        {
            throw new ArgumentException("the step has zero width", nameof(coefficients));
        }

        return 1.0 / dt;
    }

    // ---- Bookkeeping ----------------------------------------------------------------------------------------

    /// <summary>Whether the tensor holds a NaN or infinity, read back in one transfer.</summary>
    private static bool AnyNonFinite(Tensor t)
    {
        using var scope = NewDisposeScope();
        return !HostReads.ToArray<bool>(t.isfinite().all())[0];
    }

    /// <summary>What every rank learns of one of this rank's groups.</summary>
    private static GroupShare ShareOf(LayeredModel model, int image, GroupRollout g, GroupJudgement judged) => new(
        image,
        g.Layers,
        g.Transitions.Count,
        AnyNonFinite(g.Sampling.Final),
        judged,
        [.. g.Candidates.Select(c => DecompositionEvaluator.Evaluate(g.Image.Id, c, null, g.Image.Image).BadLayers)],
        g.Transitions.Count * 3 * TransformerFlops.Forward(model.Config.Transformer, g.Conditioning.Batch, g.Conditioning.ImageTokens, g.Conditioning.TextTokens));

    /// <summary>The step's log line from the groups of all ranks (in image order): the same line one process writes.</summary>
    private StepLog StepLogOf(
        int step,
        IReadOnlyList<GroupShare> groups,
        AdvantageResult advantages,
        UpdateStats update,
        (double Sampling, double Judging, double Updating) seconds)
    {
        var judged = groups.Select(g => g.Judgement).ToList();
        var rewards = judged.SelectMany(j => j.Rewards).Where(r => r is not null).Select(r => r!.Value).ToArray();
        var phase1 = judged.SelectMany(j => j.Candidates).Where(c => c.Phase1Reward is not null).Select(c => c.Phase1Reward!.Value).ToArray();
        double flops = groups.Sum(g => g.Flops);
        var badLayers = groups.SelectMany(g => g.BadLayers).ToArray();
        return new StepLog
        {
            Step = step,
            RewardMean = rewards.Length == 0 ? double.NaN : rewards.Average(),
            RewardStd = rewards.Length == 0 ? double.NaN : PopulationStd(rewards),
            Phase1RewardMean = phase1.Length == 0 ? double.NaN : phase1.Average(),
            Criteria = CriterionMeans(judged),
            ZeroStdRatio = advantages.ZeroStdRatio,
            TiesBefore = judged.Sum(j => j.Diagnostics.TiesBefore),
            TiesAfter = judged.Sum(j => j.Diagnostics.TiesAfter),
            JudgeFailures = judged.Sum(j => j.Diagnostics.Failures),
            JudgeEndpoints = judged.Aggregate(JudgeUsage.None, (u, j) => u.Add(j.Diagnostics.Usage)).Endpoints,
            DroppedGroups = advantages.DroppedGroups,
            Layers = groups.Select(g => g.Layers).ToArray(),
            Loss = update.Loss,
            RatioMean = update.RatioMean,
            RatioStd = update.RatioStd,
            LogRatioStd = update.LogRatioStd,
            ClipFraction = update.ClipFraction,
            Kl = update.Kl,
            GradNorm = update.GradNorm,
            LearningRate = config.Optim.LearningRate,
            NonFinite = update.NonFinite,
            BadLayersPerDecomposition = badLayers.Length == 0 ? 0 : badLayers.Average(),
            SamplingSeconds = seconds.Sampling,
            JudgingSeconds = seconds.Judging,
            UpdateSeconds = seconds.Updating,
            UpdateGflops = update.TrainedBatches == 0 || seconds.Updating <= 0 ? 0 : flops / seconds.Updating / 1e9,
            PeakRssMb = Process.GetCurrentProcess().PeakWorkingSet64 / (1024.0 * 1024.0),
            FirstLogRatios = update.FirstLogRatios,
        };
    }

    private static Dictionary<string, double> CriterionMeans(IEnumerable<GroupJudgement> judged)
    {
        var scores = judged.SelectMany(j => j.Candidates).Where(c => !c.Failed).Select(c => c.Calibrated ?? c.Phase1).OfType<CriterionScores>().ToList();
        return scores.Count == 0
            ? []
            : Criteria.All.ToDictionary(Criteria.Key, c => scores.Average(s => s[c]));
    }
}

/// <summary>What a step hands back to the trainer: its log line, skipped images, judge usage, and the groups for sample grids.</summary>
public sealed record StepOutcome(StepLog Log, int Skipped, JudgeUsage Usage, IReadOnlyList<(RgbaImage Input, IReadOnlyList<LayerStack> Candidates)> Groups);

/// <summary>
/// One timestep's loss from <see cref="GrpoStep.Loss"/>: <paramref name="Total"/> (scalar, float64, differentiable),
/// <paramref name="KlPart"/> (float64 [1], kl / terms, detached; 0 when KL is off) and <paramref name="Stats"/> (float64 [5], detached).
/// </summary>
public sealed record StepLoss(Tensor Total, Tensor KlPart, Tensor Stats);
