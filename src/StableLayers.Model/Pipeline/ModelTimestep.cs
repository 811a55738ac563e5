using static TorchSharp.torch;

namespace StableLayers.Model.Pipeline;

/// <summary>
/// The transformer's timestep input for a step at noise level sigma, rounded the way diffusers'
/// QwenImageLayeredPipeline rounds it. The scheduler holds t = 1000 sigma in float32; the pipeline casts t to the
/// latents' dtype and divides by 1000 in that dtype, so a bf16 deployment feeds bf16(bf16(1000 sigma) / 1000),
/// which is not bf16(sigma) (e.g. sigma 0.86585: 0.86328 instead of 0.86719). Our latents stay float32 whatever
/// the transformer's dtype, so the model's dtype stands in for the latents' dtype here.
/// </summary>
public static class ModelTimestep
{
    /// <summary>diffusers' num_train_timesteps: the scheduler's timesteps are sigma times this.</summary>
    public const float TrainTimesteps = 1000f;

    /// <summary>
    /// [<paramref name="batch"/>] copies of the timestep for a transformer computing in <paramref name="modelDType"/>.
    /// bf16 and fp16 get the pipeline's double rounding (in that dtype); float32 and wider get the float32 sigma, which
    /// is within one float32 ulp of diffusers' float32 t / 1000.
    /// </summary>
    public static Tensor FromSigma(float sigma, long batch, ScalarType modelDType, Device? device = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        var sigmas = full([batch], sigma, dtype: ScalarType.Float32, device: device);
        if (modelDType is not (ScalarType.BFloat16 or ScalarType.Float16))
        {
            return sigmas;
        }

        using var scope = NewDisposeScope();
        // float32 product (the scheduler's timesteps), one rounding to the model dtype (the pipeline's .to(latents.dtype)),
        // then a division whose result is rounded to that dtype again (torch computes it in float32 and rounds once).
        var t = sigmas.mul(TrainTimesteps).to(modelDType);
        return t.div(TrainTimesteps).MoveToOuterDisposeScope();
    }
}
