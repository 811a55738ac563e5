namespace StableLayers.Data.Synthesis;

/// <summary>
/// What to synthesise. Layer counts include the background: 2..5 means a background plus 1..4 foreground layers.
/// </summary>
public sealed record SynthOptions
{
    public const int MinSize = 16;
    public const int MaxSize = 4096;
    public const int MaxLayerCount = 16;

    /// <summary>Canvas side in pixels (square canvases).</summary>
    public int Size { get; init; } = 128;

    public int MinLayers { get; init; } = 2;

    public int MaxLayers { get; init; } = 5;

    public int Seed { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> with a one-line reason when the options cannot be used.</summary>
    public void Validate()
    {
        if (Size < MinSize || Size > MaxSize)
        {
            throw new ArgumentException($"size must be {MinSize}..{MaxSize}, got {Size}");
        }

        if (MinLayers < 2 || MaxLayers < MinLayers || MaxLayers > MaxLayerCount)
        {
            throw new ArgumentException($"layer range must be within 2..{MaxLayerCount} with min <= max, got {MinLayers}-{MaxLayers}");
        }
    }
}

/// <summary>One synthetic design: a layer stack (background first) and a caption describing it bottom to top.</summary>
public sealed record SynthSample(string Id, Core.Layers.LayerStack Stack, string Caption);

/// <summary>What <see cref="SynthGenerator.WriteDataset"/> produced.</summary>
public sealed record SynthDatasetStats(int Count, IReadOnlyDictionary<int, int> SamplesByLayerCount, TimeSpan Elapsed)
{
    public double SamplesPerSecond => Elapsed.TotalSeconds > 0 ? Count / Elapsed.TotalSeconds : 0;
}
