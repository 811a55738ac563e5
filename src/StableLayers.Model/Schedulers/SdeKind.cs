namespace StableLayers.Model.Schedulers;

/// <summary>Which stochastic step docs/RL.md describes: Flow-GRPO's "sde" form or the coefficient-preserving variant.</summary>
public enum SdeKind
{
    /// <summary>Flow-GRPO's SDE: sigma_t = a sqrt(sigma / (1 - sigma~)), std = sigma_t sqrt(-dt).</summary>
    Sde,

    /// <summary>Coefficient-preserving sampling: std = sigma' sin(a pi / 2), mean from the x0 / x1 predictions.</summary>
    Cps,
}
