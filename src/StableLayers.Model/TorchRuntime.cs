using TorchSharp;

namespace StableLayers.Model;

/// <summary>Small helpers around TorchSharp start-up that the rest of the model code relies on.</summary>
public static class TorchRuntime
{
    /// <summary>Runs a trivial op so that a native-library load failure surfaces here, with a hint, not deep in a model.</summary>
    public static string Describe()
    {
        try
        {
            using var t = torch.ones(1);
            return $"TorchSharp {typeof(torch).Assembly.GetName().Version}, libtorch {torch.__version__}, threads {torch.get_num_threads()}";
        }
        catch (TypeInitializationException e)
        {
            throw new InvalidOperationException(
                "TorchSharp failed to load its native library. On Debian 12 the build must mark GLIBCXX_3.4.32 weak in " +
                "libLibTorchSharp.so (build/TorchSharpNativeFix.targets); rebuild, and see README 'Troubleshooting'.", e);
        }
    }
}
