using System.Globalization;

namespace StableLayers.Model.Tests;

/// <summary>
/// Peak resident host memory of this process while an action runs (Linux). The kernel's high-water mark (VmHWM) is
/// reset to the current RSS first by writing "5" to /proc/self/clear_refs, so earlier work in the process does not
/// count; the result is the peak minus the RSS at the start, which counts everything the action made resident:
/// native (libtorch) and managed allocations and mapped file pages. Where the reset is refused, RSS is sampled every
/// millisecond on a background thread instead. Linked into the benchmark project too.
/// </summary>
public static class HostMemory
{
    public static long ResidentBytes() => StatusKb("VmRSS") * 1024;

    /// <summary>The kernel's high-water mark of the resident set (VmHWM) since the process started or <see cref="ResetPeak"/>.</summary>
    public static long PeakBytes() => StatusKb("VmHWM") * 1024;

    /// <summary>Resets the high-water mark to the current resident set (writing 5 to clear_refs, Linux >= 4.0); throws where refused.</summary>
    public static void ResetPeak() => File.WriteAllText("/proc/self/clear_refs", "5");

    /// <summary>Returns freed heap memory to the kernel, so that a phase's resident set starts from what is live.</summary>
    public static int MallocTrim(nuint pad) => NativeMallocTrim(pad);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int NativeMallocTrim(nuint pad);

    /// <summary>Runs <paramref name="action"/>; returns its result, the peak RSS increase over it, and how it was measured.</summary>
    public static (T Result, long PeakIncreaseBytes, string Method) MeasurePeakIncrease<T>(Func<T> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        if (TryResetPeak())
        {
            long before = ResidentBytes();
            var result = action();
            return (result, PeakBytes() - before, "VmHWM after clear_refs");
        }

        long start = ResidentBytes();
        long sampled = start;
        using var stop = new ManualResetEventSlim();
        var sampler = new Thread(() =>
        {
            long max = start;
            while (!stop.Wait(1))
            {
                max = Math.Max(max, ResidentBytes());
            }

            sampled = max;
        })
        { IsBackground = true };
        sampler.Start();
        T value;
        try
        {
            value = action();
        }
        finally
        {
            stop.Set();
            sampler.Join();
        }

        return (value, Math.Max(sampled, ResidentBytes()) - start, "VmRSS sampled every 1 ms");
    }

    private static bool TryResetPeak()
    {
        try
        {
            ResetPeak();
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long StatusKb(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                var parts = line[(field.Length + 1)..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return long.Parse(parts[0], CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException($"/proc/self/status has no {field}");
    }
}
