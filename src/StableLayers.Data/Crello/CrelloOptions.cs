using StableLayers.Core.Layers;

namespace StableLayers.Data.Crello;

/// <summary>
/// How Crello canvases become layer stacks. The defaults are LayerD's ground-truth conventions
/// (docs/EVALUATION.md); <see cref="Native"/> renders every element as is at the canvas's own size.
/// </summary>
public sealed record CrelloOptions
{
    /// <summary>Drop elements whose rendered layer has no fully opaque pixel (LayerD: they are effects, not objects).</summary>
    public bool DropElementsWithoutOpaquePixel { get; init; } = true;

    /// <summary>Drop the layers under the topmost element that is opaque over the whole canvas (they cannot be seen).</summary>
    public bool DropLayersUnderOpaqueFullCanvas { get; init; } = true;

    /// <summary>Insert an opaque white layer 0 when the bottom layer does not cover the canvas.</summary>
    public bool AddWhiteBackground { get; init; } = true;

    /// <summary>Render so that the shorter canvas side has this many pixels (LayerD: 512); null keeps the canvas size.</summary>
    public int? ShortSide { get; init; } = 512;

    public static CrelloOptions LayerD { get; } = new();

    public static CrelloOptions Native { get; } = new()
    {
        DropElementsWithoutOpaquePixel = false,
        DropLayersUnderOpaqueFullCanvas = false,
        AddWhiteBackground = false,
        ShortSide = null,
    };
}

/// <summary>One Crello canvas as a layer stack (background first, one layer per kept element).</summary>
public sealed record CrelloSample(string Id, LayerStack Stack);
