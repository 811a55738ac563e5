namespace StableLayers.TestSupport;

/// <summary>Locates test fixtures: ../shared/data beside the repository (tests may read it; users never need it).</summary>
public static class TestData
{
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>The real layered files (ag-psd fixtures, MIT) in the layered-folder format, with the PSDs in _psd/.</summary>
    public static string RealPsdDev => FindShared("data/real-psd-dev");

    public static IReadOnlyList<string> RealPsdDevSamples =>
        Directory.GetDirectories(RealPsdDev).Where(d => !Path.GetFileName(d).StartsWith('_')).Order(StringComparer.Ordinal).ToList();

    public static string GoldenDir => Path.Combine(RepoRoot, "tests", "golden");

    private static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "StableLayers.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("cannot find the repository root (StableLayers.slnx) above " + AppContext.BaseDirectory);
    }

    private static string FindShared(string relative)
    {
        var env = Environment.GetEnvironmentVariable("STABLELAYERS_SHARED");
        var candidates = new List<string>();
        if (!string.IsNullOrEmpty(env))
        {
            candidates.Add(Path.Combine(env, relative));
        }

        candidates.Add(Path.Combine(RepoRoot, "..", "shared", relative));
        foreach (var c in candidates)
        {
            if (Directory.Exists(c))
            {
                return Path.GetFullPath(c);
            }
        }

        throw new DirectoryNotFoundException($"test data not found; looked in: {string.Join(", ", candidates)} (set STABLELAYERS_SHARED)");
    }
}

/// <summary>A temporary directory deleted on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "stablelayers-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
