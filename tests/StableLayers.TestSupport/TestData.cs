namespace StableLayers.TestSupport;

/// <summary>
/// Locates test fixtures. Every fixture lives inside the repository (users clone it alone), so a path that
/// resolves outside <see cref="RepoRoot"/> or does not exist is an error, never a fallback to somewhere else.
/// </summary>
public static class TestData
{
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>The real layered files (ag-psd fixtures, MIT) in the layered-folder format, with the PSDs in _psd/.</summary>
    public static string RealPsdDev => InRepo("samples/real-psd-dev");

    public static IReadOnlyList<string> RealPsdDevSamples =>
        Directory.GetDirectories(RealPsdDev).Where(d => !Path.GetFileName(d).StartsWith('_')).Order(StringComparer.Ordinal).ToList();

    public static string GoldenDir => InRepo("tests/golden");

    /// <summary>Tiny Qwen-Image-Layered checkpoints, inputs and the outputs diffusers' own code computed from them.</summary>
    public static string DiffusersGolden => InRepo("tests/golden/diffusers-golden");

    /// <summary>A tiny random Qwen2.5-VL text stack and the hidden states transformers' own code computed.</summary>
    public static string Qwen25VlTextGolden => InRepo("tests/golden/qwen25vl-text-golden");

    /// <summary>A directory of the repository, by repository-relative path; throws when it is missing or lies outside.</summary>
    public static string InRepo(string relative)
    {
        var full = Path.GetFullPath(Path.Combine(RepoRoot, relative));
        var root = Path.GetFullPath(RepoRoot) + Path.DirectorySeparatorChar;
        if (!full.StartsWith(root, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"test data must come from the repository: {relative} resolves to {full}, outside {RepoRoot}");
        }

        if (!Directory.Exists(full))
        {
            throw new DirectoryNotFoundException($"test data not found in the repository: {full}");
        }

        return full;
    }

    private static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "StableLayers.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("cannot find the repository root (StableLayers.slnx) above " + AppContext.BaseDirectory);
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
