using System.Text;

namespace StableLayers.Model.Weights;

/// <summary>A checkpoint tensor whose shape differs from the module's.</summary>
public sealed record ShapeMismatch(string Name, long[] ModuleShape, long[] FileShape, string File)
{
    public override string ToString() =>
        $"{Name}: module [{string.Join(",", ModuleShape)}], file [{string.Join(",", FileShape)}] in {System.IO.Path.GetFileName(File)}";
}

/// <summary>What <see cref="DiffusersCheckpoint.Load"/> matched between a module's state and a checkpoint.</summary>
public sealed class LoadReport
{
    public required IReadOnlyList<string> Loaded { get; init; }

    /// <summary>Module parameters/buffers the checkpoint does not have (left as they were).</summary>
    public required IReadOnlyList<string> Missing { get; init; }

    /// <summary>Checkpoint tensors the module has no place for (ignored).</summary>
    public required IReadOnlyList<string> Unexpected { get; init; }

    /// <summary>Names present in both with different shapes (not copied).</summary>
    public required IReadOnlyList<ShapeMismatch> Mismatched { get; init; }

    public required IReadOnlyList<string> Files { get; init; }

    public bool IsExact => Missing.Count == 0 && Unexpected.Count == 0 && Mismatched.Count == 0;

    /// <summary>A readable list of the problems, at most <paramref name="maxPerKind"/> names of each kind.</summary>
    public string Describe(int maxPerKind = 20)
    {
        var sb = new StringBuilder();
        Section(sb, "missing from checkpoint", Missing, maxPerKind);
        Section(sb, "unexpected in checkpoint", Unexpected, maxPerKind);
        Section(sb, "shape mismatch", Mismatched.Select(m => m.ToString()).ToList(), maxPerKind);
        return sb.Length == 0 ? $"all {Loaded.Count} tensors matched" : sb.ToString().TrimEnd();
    }

    private static void Section(StringBuilder sb, string title, IReadOnlyList<string> items, int max)
    {
        if (items.Count == 0)
        {
            return;
        }

        sb.Append(title).Append(" (").Append(items.Count).Append("): ");
        sb.AppendJoin(", ", items.Take(max));
        if (items.Count > max)
        {
            sb.Append(", ...");
        }

        sb.AppendLine();
    }
}
