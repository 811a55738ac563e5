using System.Collections;
using System.Globalization;

namespace StableLayers.Distributed;

/// <summary>
/// What the MPI launcher told this process through its environment, readable before MPI_Init (to pick a backend or a
/// device early). Open MPI's mpirun sets <c>OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK/LOCAL_SIZE</c>; MPICH's Hydra and
/// Slurm's PMI set <c>PMI_RANK/PMI_SIZE</c> (Hydra also <c>MPI_LOCALRANKID</c>); PMIx launchers (Open MPI 5's prterun,
/// Slurm with PMIx) set <c>PMIX_RANK</c> but not the size. Values the launcher did not give are null.
/// </summary>
public sealed record LaunchInfo(string? Launcher, int? Rank, int? Size, int? LocalRank, int? LocalSize)
{
    /// <summary>True when an MPI launcher started this process (MPI can then be initialised without a singleton).</summary>
    public bool IsLaunched => Launcher is not null;

    /// <summary>This process's environment.</summary>
    public static LaunchInfo Current => FromEnvironment(ReadEnvironment());

    /// <summary>Parses launcher variables from <paramref name="environment"/> (name to value).</summary>
    public static LaunchInfo FromEnvironment(IReadOnlyDictionary<string, string> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        int? Int(string name) =>
            environment.TryGetValue(name, out var s) && int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : null;

        if (Int("OMPI_COMM_WORLD_SIZE") is int ompiSize)
        {
            return new LaunchInfo("Open MPI", Int("OMPI_COMM_WORLD_RANK"), ompiSize, Int("OMPI_COMM_WORLD_LOCAL_RANK"), Int("OMPI_COMM_WORLD_LOCAL_SIZE"));
        }

        if (Int("PMI_SIZE") is int pmiSize)
        {
            return new LaunchInfo("PMI", Int("PMI_RANK"), pmiSize, Int("MPI_LOCALRANKID"), Int("MPI_LOCALNRANKS"));
        }

        if (Int("PMIX_RANK") is int pmixRank)
        {
            return new LaunchInfo("PMIx", pmixRank, null, null, null);
        }

        return new LaunchInfo(null, null, null, null, null);
    }

    private static Dictionary<string, string> ReadEnvironment()
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in Environment.GetEnvironmentVariables())
        {
            if (e.Key is string k && e.Value is string v)
            {
                result[k] = v;
            }
        }

        return result;
    }
}
