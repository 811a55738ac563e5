namespace StableLayers.Training.Grpo;

/// <summary>How <see cref="GroupAdvantages"/> normalises rewards (docs/RL.md "GRPO loss").</summary>
/// <param name="GlobalStd">Divide by the population std over all rewards of the step (the kept groups' successful candidates) instead of each group's own.</param>
/// <param name="Clamp">Advantages are clamped to [-Clamp, Clamp].</param>
/// <param name="Epsilon">Added to the std in the denominator.</param>
public sealed record AdvantageOptions(bool GlobalStd = false, double Clamp = 5.0, double Epsilon = 1e-4);

/// <summary>Advantages of one step's groups and the counts worth logging.</summary>
/// <param name="Advantages">Same shape as the rewards: one value per candidate, null for a failed candidate and for every candidate of a dropped group.</param>
/// <param name="UsedGroups">Groups with at least two successful candidates (the ones that get advantages).</param>
/// <param name="DroppedGroups">Groups left with fewer than two successful candidates.</param>
/// <param name="FailedCandidates">Candidates whose reward is null.</param>
/// <param name="ZeroStdGroups">Used groups whose rewards are all equal (their advantages are exactly 0).</param>
/// <param name="MeanGroupStd">Mean over used groups of the group's population reward std (0 when none).</param>
public sealed record AdvantageResult(
    IReadOnlyList<IReadOnlyList<double?>> Advantages,
    int UsedGroups,
    int DroppedGroups,
    int FailedCandidates,
    int ZeroStdGroups,
    double MeanGroupStd)
{
    /// <summary>zero_std_ratio: the share of used groups with all rewards equal (0 when no group was used).</summary>
    public double ZeroStdRatio => UsedGroups == 0 ? 0.0 : (double)ZeroStdGroups / UsedGroups;
}

/// <summary>
/// GRPO advantages A = (r - mean_group) / (std + eps), population std (per group, or over all rewards of the
/// step with <see cref="AdvantageOptions.GlobalStd"/>), clamped. Failed candidates (null rewards) are dropped;
/// a group continues while at least two remain. A group whose rewards are all equal (max == min) gets exactly 0
/// and is counted in <see cref="AdvantageResult.ZeroStdGroups"/>.
/// </summary>
public static class GroupAdvantages
{
    /// <summary>Computes the advantages of <paramref name="rewards"/> (one list per group, one entry per candidate).</summary>
    public static AdvantageResult Compute(IReadOnlyList<IReadOnlyList<double?>> rewards, AdvantageOptions? options = null)
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
}
