namespace StableLayers.Model.Inference;

public enum SamplerKind
{
    Euler,
    Heun,
}

/// <summary>How one decomposition is sampled.</summary>
public sealed record DecomposeOptions
{
    /// <summary>Number of output layers N (background included).</summary>
    public int Layers { get; init; } = 4;

    public int Steps { get; init; } = 20;

    public SamplerKind Sampler { get; init; } = SamplerKind.Euler;

    /// <summary>True CFG scale; 1 disables the unconditional pass.</summary>
    public float Cfg { get; init; } = 1f;

    public bool CfgNormalize { get; init; } = true;

    public long Seed { get; init; }

    public string Prompt { get; init; } = string.Empty;

    public string NegativePrompt { get; init; } = " ";
}
