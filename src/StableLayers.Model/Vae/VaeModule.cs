using static TorchSharp.torch;

namespace StableLayers.Model.Vae;

/// <summary>
/// Base of the VAE modules. Children and parameters are registered explicitly under their diffusers names, so the
/// reflection-based RegisterComponents (which ModuleList calls on its items) must not also register our private
/// fields under their C# names: that would put duplicate "_conv1"-style keys into state_dict().
/// </summary>
public abstract class VaeModule : nn.Module<Tensor, Tensor>
{
    protected VaeModule(string name)
        : base(name)
    {
    }

    protected override void RegisterComponents()
    {
    }
}
