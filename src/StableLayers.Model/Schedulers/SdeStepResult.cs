using static TorchSharp.torch;

namespace StableLayers.Model.Schedulers;

/// <summary>One sampled stochastic step (all float32 except <see cref="LogProb"/>).</summary>
/// <param name="Mean">mu, the Gaussian's mean, shape of x.</param>
/// <param name="XNext">The sample x' = mu + s eps.</param>
/// <param name="Eps">The standard-normal noise drawn for it.</param>
/// <param name="LogProb">log p(x' | x) per sample: the float64 per-element log-density, meaned over all non-batch dimensions, shape [B].</param>
public sealed record SdeStepResult(Tensor Mean, Tensor XNext, Tensor Eps, Tensor LogProb);
