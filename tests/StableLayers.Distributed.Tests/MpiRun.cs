namespace StableLayers.Distributed.Tests;

/// <summary>Starts tests/StableLayers.Distributed.Worker under mpirun (<see cref="TestSupport.MpiRun"/>).</summary>
internal static class MpiRun
{
    /// <summary>Runs <c>mpirun -np <paramref name="ranks"/> dotnet Worker.dll args...</c> and waits at most <paramref name="timeout"/>.</summary>
    internal static TestSupport.MpiRun.Result Start(int ranks, TimeSpan timeout, params string[] args) =>
        TestSupport.MpiRun.Run(ranks, timeout, Path.Combine(AppContext.BaseDirectory, "StableLayers.Distributed.Worker.dll"), args);
}
