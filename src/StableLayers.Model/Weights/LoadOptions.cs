using static TorchSharp.torch;

namespace StableLayers.Model.Weights;

/// <summary>How a checkpoint is loaded into a module.</summary>
public sealed record LoadOptions
{
    /// <summary>If set, the module's floating-point state ends up in this dtype (integer buffers keep theirs).</summary>
    public ScalarType? DType { get; init; }

    /// <summary>If set, the module's state ends up on this device.</summary>
    public Device? Device { get; init; }

    /// <summary>
    /// Throw <see cref="StableLayers.Core.BadInputException"/> unless every name, shape and dtype kind matches;
    /// checked from the headers before anything is copied. When false, mismatches are reported and skipped.
    /// </summary>
    public bool Strict { get; init; } = true;

    /// <summary>
    /// Maps a checkpoint tensor name to the module's state name, for checkpoints whose key layout differs from the
    /// module's (e.g. transformers' <c>model.language_model.*</c>); returning null skips a tensor that is not part of
    /// the module (a vision tower, an lm_head) without reporting it as unexpected. Null: names are used as they are.
    /// </summary>
    public Func<string, string?>? KeyMap { get; init; }

    internal void Validate()
    {
        if (DType is { } d && !SafetensorsDType.IsFloating(d))
        {
            throw new ArgumentException($"a module's dtype must be floating-point, not {d}", nameof(DType));
        }
    }
}
