namespace StableLayers.Core.Imaging;

/// <summary>Process-wide guard against decompression bombs and accidental gigapixel inputs.</summary>
public static class ImageLimits
{
    public const long DefaultMaxPixels = 64L * 1024 * 1024;

    private static long maxPixels = DefaultMaxPixels;

    /// <summary>Largest width*height any reader accepts (default 64 MP). Set once at start-up, e.g. from <c>--max-pixels</c>.</summary>
    public static long MaxPixels
    {
        get => Interlocked.Read(ref maxPixels);
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1L);
            Interlocked.Exchange(ref maxPixels, value);
        }
    }

    /// <summary>Throws a <see cref="BadInputException"/> naming <paramref name="path"/> when the size is invalid or over the limit.</summary>
    public static void Check(string path, long width, long height, long? maxPixels = null)
    {
        if (width <= 0 || height <= 0)
        {
            throw new BadInputException(path, $"invalid image size {width}x{height}");
        }

        long limit = maxPixels ?? MaxPixels;
        if (width * height > limit)
        {
            throw new BadInputException(path, $"image is {width}x{height} = {width * height / 1e6:F1} MP, over the limit of {limit / 1e6:F1} MP (raise it with --max-pixels)");
        }
    }
}
