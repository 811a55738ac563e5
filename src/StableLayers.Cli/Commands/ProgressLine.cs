namespace StableLayers.Cli.Commands;

/// <summary>
/// Progress for long commands: an updating line on a terminal, plain lines (about every 10%) when
/// output is redirected, so CI logs stay readable.
/// </summary>
public sealed class ProgressLine : IProgress<string>
{
    private readonly TextWriter writer;
    private readonly bool interactive;
    private readonly int total;
    private readonly Lock gate = new();
    private int count;

    public ProgressLine(TextWriter writer, int total)
    {
        this.writer = writer;
        this.total = Math.Max(1, total);
        interactive = !Console.IsErrorRedirected && ReferenceEquals(writer, Console.Error);
    }

    public void Report(string value)
    {
        lock (gate)
        {
            count++;
            if (interactive)
            {
                writer.Write($"\r{value,-70}");
                if (count == total)
                {
                    writer.WriteLine();
                }
            }
            else if (count == total || count % Math.Max(1, total / 10) == 0)
            {
                writer.WriteLine(value);
            }
        }
    }
}

/// <summary>An <see cref="IProgress{T}"/> that reports on the caller's thread (Progress&lt;T&gt; posts asynchronously, so its lines arrive after the summary).</summary>
public sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
