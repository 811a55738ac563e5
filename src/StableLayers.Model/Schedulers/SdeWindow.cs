namespace StableLayers.Model.Schedulers;

/// <summary>
/// The stochastic steps of one sampling run (docs/RL.md, "SDE window"): steps Start .. Start + Size - 1 are SDE
/// steps, all others ODE (Euler). Only window steps are stored and trained.
/// </summary>
public sealed record SdeWindow
{
    /// <summary>Flow-GRPO's window size for Qwen-Image.</summary>
    public const int DefaultSize = 2;

    /// <summary>A window of <paramref name="size"/> steps from <paramref name="start"/>.</summary>
    public SdeWindow(int start, int size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        Start = start;
        Size = size;
    }

    /// <summary>No stochastic step: deterministic (evaluation) sampling.</summary>
    public static SdeWindow None { get; } = new(0, 0);

    /// <summary>First stochastic step.</summary>
    public int Start { get; }

    /// <summary>Number of consecutive stochastic steps.</summary>
    public int Size { get; }

    /// <summary>One past the last stochastic step.</summary>
    public int End => Start + Size;

    /// <summary>Whether <paramref name="step"/> lies in the window.</summary>
    public bool Contains(int step) => step >= Start && step < End;

    /// <summary>
    /// The largest start <see cref="Draw"/> can return: steps / 2 - size with integer (floor) division, so the
    /// window lies in the first half of the schedule (steps 0 .. steps / 2 - 1).
    /// </summary>
    public static int MaxStart(int steps, int size) => (steps / 2) - size;

    /// <summary>
    /// A window of <paramref name="size"/> steps whose start is uniform over the integers 0 .. steps / 2 - size,
    /// both ends included (Python's random.randint(0, steps // 2 - size)), drawn from <paramref name="rng"/>.
    /// Throws when the first half of the schedule is shorter than the window.
    /// </summary>
    public static SdeWindow Draw(int steps, Random rng, int size = DefaultSize)
    {
        ArgumentNullException.ThrowIfNull(rng);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(steps);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        int max = MaxStart(steps, size);
        if (max < 0)
        {
            throw new ArgumentException($"a window of {size} steps does not fit in the first half of {steps} steps", nameof(size));
        }

        return new SdeWindow(rng.Next(0, max + 1), size);
    }
}
