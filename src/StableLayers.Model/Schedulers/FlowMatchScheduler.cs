namespace StableLayers.Model.Schedulers;

/// <summary>
/// Builds the Qwen-Image-Layered sampling schedule the way diffusers' QwenImageLayeredPipeline and
/// FlowMatchEulerDiscreteScheduler (use_dynamic_shifting, time_shift_type "exponential") do:
/// <list type="number">
/// <item>base sigmas linspace(1, 0, steps + 1) without the final 0 (the pipeline passes these as custom sigmas);</item>
/// <item>exponential time shift sigma' = e^mu / (e^mu + (1/sigma - 1));</item>
/// <item>optionally stretched so the last sigma equals <see cref="ShiftTerminal"/>;</item>
/// <item>0 appended.</item>
/// </list>
/// Everything is computed in float64; diffusers computes in float32 and differs by under 3e-7
/// (tests/golden/make_scheduler_golden.py checks that).
/// </summary>
/// <param name="Mu">Shift strength; for the layered pipeline sqrt(condition tokens / 256), see <see cref="MuForConditionTokens"/>.</param>
/// <param name="ShiftTerminal">Value the last non-zero sigma is stretched to; null leaves the shifted schedule as is.</param>
public sealed record FlowMatchScheduler(double Mu, double? ShiftTerminal = FlowMatchScheduler.DefaultShiftTerminal)
{
    /// <summary>
    /// Qwen-Image's scheduler_config.json value. The Layered checkpoint's own config could not be read;
    /// it is assumed to be the same (MODEL.md marks this unverified).
    /// </summary>
    public const double DefaultShiftTerminal = 0.02;

    /// <summary>
    /// The layered pipeline's base sequence length, 256 * 256 / 16 / 16: a 256 px square image has 256 tokens,
    /// so mu = 1 there, 2.5 at 640 px and 4 at 1024 px.
    /// </summary>
    public const double BaseSequenceLength = 256.0;

    /// <summary>
    /// mu as the layered pipeline computes it: sqrt(condition-image tokens / 256). It does not use
    /// calculate_shift's linear interpolation (base_shift/max_shift), which the file defines but never calls.
    /// </summary>
    public static double MuForConditionTokens(int conditionTokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(conditionTokens);
        return Math.Sqrt(conditionTokens / BaseSequenceLength);
    }

    /// <summary>The scheduler for a condition image of <paramref name="conditionTokens"/> packed tokens.</summary>
    public static FlowMatchScheduler ForConditionTokens(int conditionTokens, double? shiftTerminal = DefaultShiftTerminal) =>
        new(MuForConditionTokens(conditionTokens), shiftTerminal);

    /// <summary>Exponential time shift with exponent 1: pushes sigmas towards 1 (noise) as mu grows.</summary>
    public static double TimeShift(double mu, double sigma)
    {
        double e = Math.Exp(mu);
        return e / (e + ((1.0 / sigma) - 1.0));
    }

    /// <summary>
    /// Affine stretch of 1 - sigma so that the last entry becomes <paramref name="shiftTerminal"/> while sigma = 1 stays 1.
    /// When the last sigma is already 1 (a single step) the stretch is 0/0 in diffusers (NaN); we keep the input instead.
    /// </summary>
    public static double[] StretchToTerminal(IReadOnlyList<double> sigmas, double shiftTerminal)
    {
        ArgumentNullException.ThrowIfNull(sigmas);
        if (sigmas.Count == 0)
        {
            return [];
        }

        double lastOneMinus = 1.0 - sigmas[^1];
        if (lastOneMinus == 0.0)
        {
            return [.. sigmas];
        }

        double scale = lastOneMinus / (1.0 - shiftTerminal);
        return sigmas.Select(s => 1.0 - ((1.0 - s) / scale)).ToArray();
    }

    /// <summary>The schedule for <paramref name="steps"/> denoising steps.</summary>
    public FlowMatchSchedule Schedule(int steps)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(steps);
        if (ShiftTerminal is { } terminal && (terminal is <= 0.0 or >= 1.0 || double.IsNaN(terminal)))
        {
            throw new InvalidOperationException($"shift_terminal {terminal} must lie in (0, 1)");
        }

        // numpy linspace(1, 0, steps + 1)[:-1]: start + i * step, i.e. 1 - i/steps.
        var sigmas = new double[steps];
        double delta = -1.0 / steps;
        for (int i = 0; i < steps; i++)
        {
            sigmas[i] = TimeShift(Mu, 1.0 + (i * delta));
        }

        if (ShiftTerminal is { } t)
        {
            sigmas = StretchToTerminal(sigmas, t);
        }

        return new FlowMatchSchedule([.. sigmas, 0.0]);
    }
}
