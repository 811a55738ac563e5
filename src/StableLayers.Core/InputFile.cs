namespace StableLayers.Core;

/// <summary>Opens user files, turning "missing" and "unreadable" into <see cref="BadInputException"/>s that name the file.</summary>
public static class InputFile
{
    public static byte[] ReadAllBytes(string path) => Guard(path, () => File.ReadAllBytes(path));

    public static FileStream OpenRead(string path) => Guard(path, () => File.OpenRead(path));

    public static string ReadAllText(string path) => Guard(path, () => File.ReadAllText(path));

    private static T Guard<T>(string path, Func<T> open)
    {
        try
        {
            return open();
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new BadInputException(path, "file not found");
        }
        catch (IOException e)
        {
            throw new BadInputException(path, $"cannot read file ({e.Message})", e);
        }
    }
}
