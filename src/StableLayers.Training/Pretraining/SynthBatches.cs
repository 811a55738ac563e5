using StableLayers.Data.Synthesis;

namespace StableLayers.Training.Pretraining;

/// <summary>
/// A deterministic, resumable stream of same-layer-count batches of synthetic designs: batch <c>s</c> is a
/// pure function of (seed, s), so a resumed run sees exactly the batches it would have seen.
/// Layer counts cycle over the range step by step (every sequence in a batch has the same length).
/// </summary>
public sealed class SynthBatches
{
    private readonly SynthGenerator generator;
    private readonly SynthOptions options;

    public SynthBatches(SynthOptions options, int batchSize)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        options.Validate();
        this.options = options;
        BatchSize = batchSize;
        generator = new SynthGenerator(options);
    }

    public int BatchSize { get; }

    private int Span => options.MaxLayers - options.MinLayers + 1;

    public int LayerCountAt(long step) => options.MinLayers + (int)(step % Span);

    /// <summary>The samples of batch <paramref name="step"/>; generator index i has layer count min + i % span.</summary>
    public IReadOnlyList<SynthSample> At(long step)
    {
        int offset = LayerCountAt(step) - options.MinLayers;
        long round = step / Span;
        var samples = new SynthSample[BatchSize];
        for (int j = 0; j < BatchSize; j++)
        {
            long q = (round * BatchSize) + j;
            samples[j] = generator.Generate((q * Span) + offset);
        }

        return samples;
    }
}
