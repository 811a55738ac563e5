using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Data.Synthesis;

namespace StableLayers.Training.Grpo;

/// <summary>One unlabeled training image at the model's resolution, with its caption where the source has one (synth).</summary>
public sealed record TrainingImage(string Id, RgbaImage Image, string? Caption = null);

/// <summary>
/// The unlabeled images GRPO trains on: synthetic designs (composites only; their layers are never used)
/// or a folder of images of any size, centre-cropped to a square, resized to the model resolution and
/// flattened on white. Image <c>i</c> is a pure function of (seed, i), so a resumed run sees the same data.
/// </summary>
public sealed class TrainingImages
{
    private static readonly string[] Extensions = [".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"];
    private readonly int resolution;
    private readonly long seed;
    private readonly SynthGenerator? synth;
    private readonly IReadOnlyList<string> files = [];

    private TrainingImages(int resolution, long seed, SynthGenerator? synth, IReadOnlyList<string> files)
    {
        this.resolution = resolution;
        this.seed = seed;
        this.synth = synth;
        this.files = files;
    }

    /// <summary>Human-readable origin for logs.</summary>
    public string Description => synth is not null ? $"synthetic designs (seed {synth.Options.Seed})" : $"{files.Count} images";

    public static TrainingImages Synthetic(int resolution, int seed, int minLayers, int maxLayers) =>
        new(resolution, seed, new SynthGenerator(new SynthOptions { Size = resolution, Seed = seed, MinLayers = minLayers, MaxLayers = maxLayers }), []);

    /// <summary>Lists a folder's images (recursively, sorted); fails clearly when there are none.</summary>
    public static TrainingImages Folder(string dir, int resolution, long seed)
    {
        if (!Directory.Exists(dir))
        {
            throw new BadInputException(dir, "image folder not found");
        }

        var list = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .Order(StringComparer.Ordinal)
            .ToList();
        return list.Count == 0
            ? throw new BadInputException(dir, $"no images ({string.Join(", ", Extensions)}) in the folder")
            : new TrainingImages(resolution, seed, null, list);
    }

    /// <summary>
    /// The image at a data position. Folders are visited in a fresh seeded order every epoch. A file that
    /// can't be decoded throws a <see cref="BadInputException"/> naming it (the trainer skips and logs it).
    /// </summary>
    public TrainingImage At(long position)
    {
        if (synth is not null)
        {
            var sample = synth.Generate(position);
            return new TrainingImage(sample.Id, sample.Stack.FlattenOnWhite(), sample.Caption);
        }

        long epoch = position / files.Count;
        int[] order = Enumerable.Range(0, files.Count).ToArray();
        new Random((int)(((seed * 1_000_003) + (epoch * 7919)) & int.MaxValue)).Shuffle(order);
        string file = files[order[position % files.Count]];
        return new TrainingImage(Path.GetFileNameWithoutExtension(file), Prepare(PngCodec.Read(file), resolution));
    }

    /// <summary>Centre-crops to a square, resizes to <paramref name="size"/> and flattens any transparency on white.</summary>
    public static RgbaImage Prepare(RgbaImage image, int size)
    {
        ArgumentNullException.ThrowIfNull(image);
        int side = Math.Min(image.Width, image.Height);
        int x0 = (image.Width - side) / 2, y0 = (image.Height - side) / 2;
        var square = new RgbaImage(side, side);
        for (int y = 0; y < side; y++)
        {
            Array.Copy(image.Pixels, (((y + y0) * image.Width) + x0) * 4, square.Pixels, y * side * 4, side * 4);
        }

        var resized = side == size ? square : ImageResize.Resize(square, size, size);
        return resized.IsOpaque() ? resized : new LayerStack(resized).FlattenOnWhite();
    }
}
