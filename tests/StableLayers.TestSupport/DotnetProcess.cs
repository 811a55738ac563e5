using System.Diagnostics;

namespace StableLayers.TestSupport;

/// <summary>A built .NET program (the CLI, a test worker) started as its own process, as a user or mpirun starts it.</summary>
public static class DotnetProcess
{
    /// <summary>The dotnet host running these tests (DOTNET_HOST_PATH under <c>dotnet test</c>), else dotnet on PATH.</summary>
    public static string Host => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";

    /// <summary><c>dotnet DLL args...</c> with standard output and error redirected.</summary>
    public static ProcessStartInfo StartInfo(string dll, IEnumerable<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var start = new ProcessStartInfo(Host)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(dll);
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        return start;
    }
}
