using StableLayers.Core.Layers;
using StableLayers.Core;

namespace StableLayers.Judges.LayerCount;

/// <summary>
/// The layer counts (background included) an automatic choice may return, <see cref="Min"/>..<see cref="Max"/>.
/// At least 2: one layer is no decomposition. At most 16, the limit of <c>decompose --layers</c>.
/// </summary>
public sealed record LayerCountRange(int Min, int Max)
{
    public const int Lowest = 2;
    public const int Highest = 16;

    /// <summary>2..8, the range the CLI and the server use unless told otherwise.</summary>
    public static LayerCountRange Default { get; } = new(2, 8);

    public int Count => Max - Min + 1;

    /// <summary>Min, Min + 1, ..., Max.</summary>
    public IReadOnlyList<int> Values => Enumerable.Range(Min, Math.Max(0, Count)).ToArray();

    public bool Contains(int layers) => layers >= Min && layers <= Max;

    public int Clamp(int layers) => Math.Clamp(layers, Min, Max);

    /// <summary>
    /// Throws <see cref="BadInputException"/> naming the option at fault (<paramref name="minName"/> or
    /// <paramref name="maxName"/>: CLI options or API fields) with a one-line reason.
    /// </summary>
    public void Validate(string minName = "--min-layers", string maxName = "--max-layers")
    {
        if (Min < Lowest || Min > Highest)
        {
            throw new BadInputException(minName, $"must be {Lowest}..{Highest}, got {Min}");
        }

        if (Max < Lowest || Max > Highest)
        {
            throw new BadInputException(maxName, $"must be {Lowest}..{Highest}, got {Max}");
        }

        if (Min > Max)
        {
            throw new BadInputException(minName, $"{Min} is above {maxName} {Max}");
        }
    }
}

/// <summary>How <see cref="LayerCountSelector"/> chooses the layer count.</summary>
public enum LayerCountMethod
{
    /// <summary>Decompose at every count of the range and let the judge rank the candidates as one group.</summary>
    Judge,

    /// <summary>
    /// Decompose once at the range's maximum, count the distinct foreground layers that came out (not blank, not
    /// glazed, not a near-copy of another), and decompose again at that count (one or two decompositions).
    /// </summary>
    Count,
}

/// <summary>What <see cref="LayerCountSelector.SelectAsync"/> does; the decomposer it is given carries seed, steps and model.</summary>
public sealed record LayerCountSettings
{
    public LayerCountRange Range { get; init; } = LayerCountRange.Default;

    public LayerCountMethod Method { get; init; } = LayerCountMethod.Judge;
}

/// <summary>Where a selection is: decomposing at <see cref="Layers"/> layers, or judging the candidates.</summary>
public enum LayerCountStage
{
    Decomposing,
    Judging,
    Done,
}

/// <summary>Progress of one selection: <see cref="Done"/> of <see cref="Total"/> decompositions finished.</summary>
public sealed record LayerCountProgress(LayerCountStage Stage, int Layers, int Done, int Total);

/// <summary>Decomposes the selection's input into <paramref name="layers"/> layers (same seed and steps for every call).</summary>
public delegate LayerStack LayerDecomposer(int layers, CancellationToken cancellationToken);
