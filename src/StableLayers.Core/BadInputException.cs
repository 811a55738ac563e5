namespace StableLayers.Core;

/// <summary>
/// Input that cannot be used as given (corrupt, truncated, wrong size, too large, unsafe paths).
/// The CLI prints <see cref="Exception.Message"/> as one line and exits with code 2.
/// </summary>
public sealed class BadInputException : Exception
{
    public BadInputException(string path, string problem)
        : base($"{path}: {problem}")
    {
        FilePath = path;
        Problem = problem;
    }

    public BadInputException(string path, string problem, Exception inner)
        : base($"{path}: {problem}", inner)
    {
        FilePath = path;
        Problem = problem;
    }

    public string FilePath { get; }

    public string Problem { get; }
}
