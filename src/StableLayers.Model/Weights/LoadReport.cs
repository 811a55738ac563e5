using System.Text;

namespace StableLayers.Model.Weights;

/// <summary>A checkpoint tensor whose shape differs from the module's.</summary>
public sealed record ShapeMismatch(string Name, long[] ModuleShape, long[] FileShape, string File)
{
    public override string ToString() =>
        $"{Name}: module [{string.Join(",", ModuleShape)}], file [{string.Join(",", FileShape)}] in {System.IO.Path.GetFileName(File)}";
}

/// <summary>
/// A checkpoint tensor whose dtype cannot be copied into the module's: floating-point vs integer vs bool, or a dtype
/// we cannot read (e.g. the F8 variants).
/// </summary>
public sealed record TypeMismatch(string Name, string ModuleType, string FileType, string File)
{
    public override string ToString() => $"{Name}: module {ModuleType}, file {FileType} in {System.IO.Path.GetFileName(File)}";
}

/// <summary>What a checkpoint load matched between a module's state and a checkpoint.</summary>
public sealed class LoadReport
{
    public required IReadOnlyList<string> Loaded { get; init; }

    /// <summary>Module parameters/buffers the checkpoint does not have (left as they were).</summary>
    public required IReadOnlyList<string> Missing { get; init; }

    /// <summary>Checkpoint tensors the module has no place for (ignored).</summary>
    public required IReadOnlyList<string> Unexpected { get; init; }

    /// <summary>Names present in both with different shapes (not copied).</summary>
    public required IReadOnlyList<ShapeMismatch> Mismatched { get; init; }

    /// <summary>Names present in both whose dtypes cannot be converted (not copied).</summary>
    public IReadOnlyList<TypeMismatch> IncompatibleTypes { get; init; } = [];

    public required IReadOnlyList<string> Files { get; init; }

    public bool IsExact => Missing.Count == 0 && Unexpected.Count == 0 && Mismatched.Count == 0 && IncompatibleTypes.Count == 0;

    /// <summary>The problems on one line (kinds separated by "; "), at most <paramref name="maxPerKind"/> names of each kind.</summary>
    public string Describe(int maxPerKind = 20)
    {
        var parts = new List<string>();
        Section(parts, "missing from checkpoint", Missing, maxPerKind);
        Section(parts, "unexpected in checkpoint", Unexpected, maxPerKind);
        Section(parts, "shape mismatch", Mismatched.Select(m => m.ToString()).ToList(), maxPerKind);
        Section(parts, "dtype mismatch", IncompatibleTypes.Select(m => m.ToString()).ToList(), maxPerKind);
        return parts.Count == 0 ? $"all {Loaded.Count} tensors matched" : string.Join("; ", parts);
    }

    private static void Section(List<string> parts, string title, IReadOnlyList<string> items, int max)
    {
        if (items.Count == 0)
        {
            return;
        }

        var sb = new StringBuilder();
        sb.Append(title).Append(" (").Append(items.Count).Append("): ");
        sb.AppendJoin(", ", items.Take(max));
        if (items.Count > max)
        {
            sb.Append(", ...");
        }

        parts.Add(sb.ToString());
    }
}
