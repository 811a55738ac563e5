using StableLayers.Core.Imaging;

namespace StableLayers.Core.Layers;

/// <summary>One full-canvas RGBA layer (straight alpha, opacity baked in) with a display name.</summary>
public sealed record Layer(string Name, RgbaImage Image);
