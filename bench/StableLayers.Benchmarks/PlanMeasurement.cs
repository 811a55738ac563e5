using System.Diagnostics;
using System.Globalization;
using StableLayers.Model.Tests;
using StableLayers.Model.Lora;
using StableLayers.Model.Planning;
using StableLayers.Model.Transformer;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Benchmarks;

/// <summary>One configuration the planner is validated at (transformer only: the VAE and text encoder are not run).</summary>
public sealed record PlanCase(string Name, int Width, int Heads, int Blocks, int Pixels, int Layers, int TextTokens, PlanDType DType, int LoraRank, int Candidates, bool Checkpointing)
{
    public TransformerConfig Transformer
    {
        get
        {
            int headDim = Width / Heads;
            var tiny = TransformerConfig.Tiny(Blocks, Heads, headDim, textDim: 3584, inChannels: 64, outChannels: 16);
            // Full-width cases use the released RoPE split; smaller head dims get the Tiny split.
            return headDim == 128 ? TransformerConfig.Full with { NumLayers = Blocks } : tiny;
        }
    }

    public string ToArgs() => string.Join(' ', new object[] { Name, Width, Heads, Blocks, Pixels, Layers, TextTokens, DType, LoraRank, Candidates, Checkpointing }
        .Select(o => Convert.ToString(o, CultureInfo.InvariantCulture)));

    public static PlanCase Parse(IReadOnlyList<string> a) => new(
        a[0], Int(a[1]), Int(a[2]), Int(a[3]), Int(a[4]), Int(a[5]), Int(a[6]), Enum.Parse<PlanDType>(a[7], ignoreCase: true),
        Int(a[8]), Int(a[9]), bool.Parse(a[10]));

    private static int Int(string s) => int.Parse(s, CultureInfo.InvariantCulture);
}

/// <summary>What one child process measured, in bytes above the process's RSS once libtorch was initialised.</summary>
public sealed record PlanMeasured(long Weights, long SamplingPeak, long UpdatePeak, double SamplingSeconds, double UpdateSeconds);

/// <summary>
/// `plan-measure` (child process): builds the transformer of one <see cref="PlanCase"/> with random weights, attaches
/// LoRA, then runs one sampling forward without gradients and one GRPO-style update (forward with gradients,
/// a scalar loss on the float32 velocity, backward, AdamW step) on G random candidates, reading the kernel's peak
/// resident set (VmHWM, reset between phases through /proc/self/clear_refs) for each phase.
/// </summary>
public static class PlanMeasurement
{
    public const string ResultPrefix = "PLAN-MEASURED ";

    public static void RunChild(PlanCase c)
    {
        ArgumentNullException.ThrowIfNull(c);
        // Warm up on a one-block model of the same dtype first (libtorch's thread pool, oneDNN kernels and scratch
        // buffers, the .NET JIT of every forward/backward path), so that the baseline holds these one-time costs.
        var warmCase = c with { Width = 64, Heads = 2, Blocks = 1, Pixels = 32, Layers = 1, TextTokens = 4, Candidates = 1 };
        Phases(warmCase, baseline: 0, report: false);
        GC.Collect();
        _ = HostMemory.MallocTrim(0);
        Phases(c, HostMemory.ResidentBytes(), report: true);
    }

    private static void Phases(PlanCase c, long baseline, bool report)
    {
        var dtype = c.DType.ToScalarType();
        var config = c.Transformer;
        var frames = FrameShape.Layered(c.Layers, c.Pixels / 16, c.Pixels / 16);
        long imageTokens = frames.Sum(f => (long)f.TokenCount);

        // Build directly in the target dtype so that no float32 copy of the weights inflates the baseline.
        var previous = get_default_dtype();
        set_default_dtype(dtype);
        var model = new QwenImageTransformer2DModel(config);
        set_default_dtype(previous);
        model.eval();
        LoraAdapters? lora = c.LoraRank > 0
            ? LoraAdapters.Inject(model, new LoraConfig { Rank = c.LoraRank, Alpha = c.LoraRank }, seed: 1)
            : null;
        if (lora is null)
        {
            foreach (var p in model.parameters())
            {
                p.requires_grad = false;
            }
        }

        Checkpointing.Set(model, c.Checkpointing);
        var gen = new Generator(seed: 7);
        var hidden = randn([c.Candidates, imageTokens, config.InChannels], generator: gen);
        var text = randn([c.Candidates, c.TextTokens, config.JointAttentionDim], generator: gen);
        var mask = ones([c.Candidates, c.TextTokens], dtype: ScalarType.Bool);
        var sigma = full([c.Candidates], 0.7f);
        _ = HostMemory.MallocTrim(0);
        long weights = HostMemory.ResidentBytes() - baseline - InputBytes(hidden, text, mask, sigma);

        HostMemory.ResetPeak();
        var sw = Stopwatch.StartNew();
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var v = model.forward(hidden, text, mask, sigma, frames).to(ScalarType.Float32);
            _ = v.sum().item<float>();
        }

        double samplingSeconds = sw.Elapsed.TotalSeconds;
        long samplingPeak = HostMemory.PeakBytes() - baseline;

        long updatePeak = 0;
        double updateSeconds = 0;
        if (lora is not null)
        {
            var optimizer = optim.AdamW(lora.TrainableParameters(), lr: 1e-4);
            var target = randn([c.Candidates, imageTokens, config.OutputTokenChannels], generator: gen);
            _ = HostMemory.MallocTrim(0);
            HostMemory.ResetPeak();
            sw.Restart();
            using (var scope = NewDisposeScope())
            {
                optimizer.zero_grad();
                var v = model.forward(hidden, text, mask, sigma, frames).to(ScalarType.Float32);
                var loss = (v - target).pow(2).mean();
                loss.backward();
                optimizer.step();
                _ = loss.item<float>();
            }

            updateSeconds = sw.Elapsed.TotalSeconds;
            updatePeak = HostMemory.PeakBytes() - baseline;
            optimizer.Dispose();
        }

        if (report)
        {
            Console.WriteLine(ResultPrefix + string.Join(' ', new object[] { weights, samplingPeak, updatePeak, samplingSeconds, updateSeconds }
                .Select(o => Convert.ToString(o, CultureInfo.InvariantCulture))));
        }

        foreach (var t in new[] { hidden, text, mask, sigma })
        {
            t.Dispose();
        }

        lora?.Dispose();
        model.Dispose();
    }

    /// <summary>Runs one case in a fresh child process (so that each starts from the same baseline) and parses its result.</summary>
    public static PlanMeasured Measure(PlanCase c)
    {
        ArgumentNullException.ThrowIfNull(c);
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        var psi = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
        // A fixed mmap threshold: every tensor buffer of 64 KiB or more gets its own mapping, returned to the kernel when
        // freed, so the resident set follows the live tensors instead of glibc's heap fragmentation.
        psi.Environment["MALLOC_MMAP_THRESHOLD_"] = "65536";
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            psi.ArgumentList.Add(typeof(PlanMeasurement).Assembly.Location);
        }

        psi.ArgumentList.Add("plan-measure");
        foreach (var a in c.ToArgs().Split(' '))
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start the measuring process");
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        string line = output.Split('\n').LastOrDefault(l => l.StartsWith(ResultPrefix, StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"case {c.Name}: the measuring process exited with {p.ExitCode} and printed no result:\n{output}");
        var f = line[ResultPrefix.Length..].Split(' ');
        return new PlanMeasured(
            long.Parse(f[0], CultureInfo.InvariantCulture), long.Parse(f[1], CultureInfo.InvariantCulture), long.Parse(f[2], CultureInfo.InvariantCulture),
            double.Parse(f[3], CultureInfo.InvariantCulture), double.Parse(f[4], CultureInfo.InvariantCulture));
    }

    private static long InputBytes(params Tensor[] tensors) => tensors.Sum(t => t.numel() * t.ElementSize);

}
