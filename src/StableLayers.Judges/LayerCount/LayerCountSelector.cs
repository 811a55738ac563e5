using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;

namespace StableLayers.Judges.LayerCount;

/// <summary>One decomposition the selection made: its layer count, layers, and what the judge or the counter said.</summary>
/// <param name="Judgement">The judge's verdict on this candidate (method <see cref="LayerCountMethod.Judge"/>), else null.</param>
/// <param name="DistinctLayers">Layers that hold something of their own (method <see cref="LayerCountMethod.Count"/>, for the decomposition at the range's maximum), else null.</param>
public sealed record LayerCountCandidate(int Layers, LayerStack Stack, CandidateJudgement? Judgement, int? DistinctLayers)
{
    /// <summary>The judge's reward (calibrated when the judge calibrates); null when not judged or the judgement failed.</summary>
    public double? Reward => Judgement is { Failed: false } j ? j.Reward : null;
}

/// <summary>The chosen layer count with its decomposition, every candidate made on the way, and the group judgement.</summary>
public sealed record LayerCountSelection(int Layers, LayerCountMethod Method, IReadOnlyList<LayerCountCandidate> Candidates, GroupJudgement? Judgement)
{
    /// <summary>The decomposition at the chosen count.</summary>
    public LayerStack Stack => Candidates.Last(c => c.Layers == Layers).Stack;
}

/// <summary>
/// Chooses how many layers to decompose an image into (<c>--layers auto</c>). Method
/// <see cref="LayerCountMethod.Judge"/>: one decomposition per count of the range, judged as one group (the rubric's
/// phase-2 scores are absolute, and a VLM's grid shows every candidate side by side, so rewards compare across
/// counts); the highest reward wins, a tie goes to the fewer layers. Method <see cref="LayerCountMethod.Count"/>:
/// decompose at the maximum, count the layers that hold something of their own (<see cref="DistinctLayers"/>), and
/// decompose again at that count. Decomposing is the caller's <see cref="LayerDecomposer"/>, so the selector needs
/// no model and tests can give it a fake.
/// </summary>
public sealed class LayerCountSelector(IJudge? judge)
{
    /// <summary>The judge of method <see cref="LayerCountMethod.Judge"/>; null allows only <see cref="LayerCountMethod.Count"/>.</summary>
    public IJudge? Judge { get; } = judge;

    /// <summary>
    /// Decomposes <paramref name="input"/> as <paramref name="settings"/> say and returns the choice. The range is
    /// validated first (<see cref="Core.BadInputException"/> naming --min-layers / --max-layers). Cancellation is
    /// checked between decompositions and passed into each.
    /// </summary>
    public async Task<LayerCountSelection> SelectAsync(RgbaImage input, LayerCountSettings settings, LayerDecomposer decompose,
        IProgress<LayerCountProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(decompose);
        settings.Range.Validate();
        return settings.Method switch
        {
            LayerCountMethod.Judge => await ByJudgeAsync(input, settings.Range, decompose, progress, cancellationToken).ConfigureAwait(false),
            LayerCountMethod.Count => ByCount(input, settings.Range, decompose, progress, cancellationToken),
            _ => throw new ArgumentOutOfRangeException(nameof(settings), settings.Method, "unknown method"),
        };
    }

    /// <summary>
    /// Index of the winner among <paramref name="layers"/> given their <paramref name="rewards"/> (null = not scored):
    /// the highest reward, ties (within 1e-9) to the fewest layers; -1 when nothing was scored.
    /// </summary>
    public static int Best(IReadOnlyList<int> layers, IReadOnlyList<double?> rewards)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(rewards);
        int best = -1;
        for (int i = 0; i < layers.Count; i++)
        {
            if (rewards[i] is not double r || !double.IsFinite(r))
            {
                continue;
            }

            if (best < 0 || r > rewards[best]!.Value + 1e-9 || (Math.Abs(r - rewards[best]!.Value) <= 1e-9 && layers[i] < layers[best]))
            {
                best = i;
            }
        }

        return best;
    }

    private async Task<LayerCountSelection> ByJudgeAsync(RgbaImage input, LayerCountRange range, LayerDecomposer decompose,
        IProgress<LayerCountProgress>? progress, CancellationToken cancellationToken)
    {
        var judge = Judge ?? throw new InvalidOperationException("layer count by judge needs a judge; give one or use the count method");
        var counts = range.Values;
        var stacks = new List<LayerStack>(counts.Count);
        foreach (int n in counts)
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new LayerCountProgress(LayerCountStage.Decomposing, n, stacks.Count, counts.Count));
            stacks.Add(Checked(decompose(n, cancellationToken), n, input));
        }

        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report(new LayerCountProgress(LayerCountStage.Judging, 0, stacks.Count, counts.Count));
        var group = await judge.JudgeAsync(new JudgeGroup("layers-auto", input, stacks), cancellationToken).ConfigureAwait(false);
        var byIndex = group.Candidates.ToDictionary(c => c.Index);
        var candidates = counts.Select((n, i) => new LayerCountCandidate(n, stacks[i], byIndex.GetValueOrDefault(i), null)).ToArray();
        int best = Best(counts, candidates.Select(c => c.Reward).ToArray());
        if (best < 0)
        {
            string why = string.Join("; ", group.Candidates.Where(c => c.Error is not null).Select(c => c.Error).Distinct().Take(3));
            throw new InvalidOperationException($"the judge scored none of the {counts.Count} candidates{(why.Length > 0 ? ": " + why : "")}");
        }

        progress?.Report(new LayerCountProgress(LayerCountStage.Done, counts[best], counts.Count, counts.Count));
        return new LayerCountSelection(counts[best], LayerCountMethod.Judge, candidates, group);
    }

    private static LayerCountSelection ByCount(RgbaImage input, LayerCountRange range, LayerDecomposer decompose,
        IProgress<LayerCountProgress>? progress, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report(new LayerCountProgress(LayerCountStage.Decomposing, range.Max, 0, 2));
        var widest = Checked(decompose(range.Max, cancellationToken), range.Max, input);
        int distinct = DistinctLayers.Count(widest, input);
        int chosen = range.Clamp(distinct);
        var candidates = new List<LayerCountCandidate> { new(range.Max, widest, null, distinct) };
        if (chosen != range.Max)
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new LayerCountProgress(LayerCountStage.Decomposing, chosen, 1, 2));
            candidates.Add(new LayerCountCandidate(chosen, Checked(decompose(chosen, cancellationToken), chosen, input), null, null));
        }

        progress?.Report(new LayerCountProgress(LayerCountStage.Done, chosen, candidates.Count, candidates.Count));
        return new LayerCountSelection(chosen, LayerCountMethod.Count, candidates, null);
    }

    /// <summary>A decomposer that returns the wrong count or size is a programming error, not a candidate.</summary>
    private static LayerStack Checked(LayerStack stack, int layers, RgbaImage input)
    {
        ArgumentNullException.ThrowIfNull(stack);
        if (stack.Count != layers || stack.Width != input.Width || stack.Height != input.Height)
        {
            throw new InvalidOperationException(
                $"the decomposer returned {stack.Count} layers of {stack.Width}x{stack.Height} when asked for {layers} at {input.Width}x{input.Height}");
        }

        return stack;
    }
}
