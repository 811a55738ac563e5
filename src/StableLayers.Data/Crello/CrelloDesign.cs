namespace StableLayers.Data.Crello;

/// <summary>One element of a Crello canvas, in canvas pixels and degrees (v5 conventions); Image holds encoded bytes.</summary>
internal sealed record CrelloElement(string? Type, double Left, double Top, double Width, double Height, double Angle, double Opacity, byte[] Image);

/// <summary>One row of a Crello parquet file: the canvas and its elements bottom to top.</summary>
internal sealed record CrelloDesign(long Row, string Id, int CanvasWidth, int CanvasHeight, IReadOnlyList<CrelloElement> Elements);
