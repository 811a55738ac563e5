using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Training.Pretraining;

/// <summary>
/// An exponential moving average of a set of parameters (shadow = decay * shadow + (1 - decay) * parameter after
/// every optimizer step). A small diffusion model's raw weights jitter with the last few batches; the average
/// samples noticeably cleaner, which is why the shipped weights are the average.
/// </summary>
public sealed class ParameterEma : IDisposable
{
    private readonly Parameter[] parameters;
    private readonly Tensor[] shadow;

    public ParameterEma(IEnumerable<Parameter> parameters, double decay)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(decay);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(decay, 1.0);
        this.parameters = parameters.ToArray();
        Decay = decay;
        using var noGrad = no_grad();
        shadow = this.parameters.Select(p => p.detach().clone()).ToArray();
    }

    public double Decay { get; }

    /// <summary>The averaged values, in the order of the parameters given to the constructor.</summary>
    public IReadOnlyList<Tensor> Shadow => shadow;

    /// <summary>One averaging step, after the optimizer step.</summary>
    public void Update()
    {
        using var noGrad = no_grad();
        for (int i = 0; i < parameters.Length; i++)
        {
            shadow[i].lerp_(parameters[i], 1.0 - Decay);
        }
    }

    /// <summary>Replaces the average with <paramref name="values"/> (same order and shapes), e.g. when a run resumes.</summary>
    public void Load(IEnumerable<Tensor> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var list = values.ToArray();
        if (list.Length != shadow.Length)
        {
            throw new ArgumentException($"{list.Length} tensors for {shadow.Length} averaged parameters", nameof(values));
        }

        using var noGrad = no_grad();
        for (int i = 0; i < shadow.Length; i++)
        {
            shadow[i].copy_(list[i]);
        }
    }

    /// <summary>Runs <paramref name="action"/> with the averaged values in the parameters, then puts the trained values back.</summary>
    public void WithAverage(Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        Tensor[] trained;
        using (no_grad())
        {
            trained = parameters.Select(p => p.detach().clone()).ToArray();
            CopyInto(shadow);
        }

        try
        {
            action();
        }
        finally
        {
            using (no_grad())
            {
                CopyInto(trained);
            }

            foreach (var t in trained)
            {
                t.Dispose();
            }
        }
    }

    /// <summary>Writes the averaged values into the parameters for good (the end of training).</summary>
    public void CopyToParameters()
    {
        using var noGrad = no_grad();
        CopyInto(shadow);
    }

    private void CopyInto(Tensor[] values)
    {
        for (int i = 0; i < parameters.Length; i++)
        {
            parameters[i].copy_(values[i]);
        }
    }

    public void Dispose()
    {
        foreach (var t in shadow)
        {
            t.Dispose();
        }
    }
}
