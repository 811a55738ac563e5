namespace StableLayers.Cli.Tests;

/// <summary>The CLI run in this process with its output captured: what most CLI tests call as <c>Run(...)</c>.</summary>
internal static class InProcessCli
{
    /// <summary>Runs <c>stable-layers args...</c>; the exit code, standard output and standard error.</summary>
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        using var o = new StringWriter();
        using var e = new StringWriter();
        int code = StableLayersCli.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }
}
