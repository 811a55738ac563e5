using StableLayers.Core;

namespace StableLayers.Training.Checkpoints;

public static class RunFolder
{
    /// <summary>Creates the folder and proves it takes a file, so a read-only or missing disk fails before any training.</summary>
    public static void EnsureWritable(string dir)
    {
        try
        {
            Directory.CreateDirectory(dir);
            string probe = Path.Combine(dir, ".write-probe");
            File.WriteAllText(probe, "ok");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException(dir, $"run folder is not writable ({e.Message})");
        }
    }
}
