using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using StableLayers.Model.Tests;
using StableLayers.Model.Lora;
using StableLayers.Model.Transformer;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Benchmarks;

/// <summary>
/// `ckpt-memory` mode: peak host memory of one training update (forward + backward of the transformer) with and
/// without activation checkpointing, same model, same shapes, same seed. Each variant runs in its own child process
/// (this executable in `ckpt-memory-child` mode) so neither inherits the other's allocator state; the child resets
/// the kernel's high-water mark (/proc/self/clear_refs) after building the model and inputs and reports VmHWM - RSS
/// before the update, i.e. the update's own peak (activations, gradients, recompute). glibc is told to serve every
/// allocation of 64 KiB or more by mmap (MALLOC_MMAP_THRESHOLD_), so freed tensors leave the RSS at once and the RSS
/// follows libtorch's live allocations.
/// </summary>
public static class CheckpointMemory
{
    public sealed record Shape(int Width, int Heads, int Blocks, int Layers, int Side, int TextTokens, int Batch, bool FullParameter)
    {
        public int HeadDim => Width / Heads;

        public int ImageTokens => FrameShape.Layered(Layers, Side, Side).Sum(f => f.TokenCount);

        public string[] ToArgs() =>
        [
            Width.ToString(CultureInfo.InvariantCulture), Heads.ToString(CultureInfo.InvariantCulture), Blocks.ToString(CultureInfo.InvariantCulture),
            Layers.ToString(CultureInfo.InvariantCulture), Side.ToString(CultureInfo.InvariantCulture), TextTokens.ToString(CultureInfo.InvariantCulture),
            Batch.ToString(CultureInfo.InvariantCulture), FullParameter ? "full" : "lora",
        ];

        public static Shape Parse(IReadOnlyList<string> a, int from)
        {
            int At(int i, int fallback) => a.Count > from + i ? int.Parse(a[from + i], CultureInfo.InvariantCulture) : fallback;
            return new Shape(At(0, 256), At(1, 4), At(2, 6), At(3, 4), At(4, 20), At(5, 64), At(6, 1), a.Count > from + 7 && a[from + 7] == "full");
        }
    }

    public sealed record Result(bool Checkpointing, double BeforeMb, double PeakMb, double Seconds, double GradNorm)
    {
        public double UpdateMb => PeakMb - BeforeMb;
    }

    /// <summary>Runs both variants in child processes and prints the peaks and their ratio.</summary>
    public static void Run(Shape shape)
    {
        var plain = RunChild(shape, checkpointing: false);
        var ckpt = RunChild(shape, checkpointing: true);
        Console.WriteLine($"one {(shape.FullParameter ? "full-parameter" : "LoRA (r16, 12 modules per block)")} update, float32, CPU: width {shape.Width} ({shape.Heads} heads x {shape.HeadDim}), {shape.Blocks} blocks, "
            + $"batch {shape.Batch}, {shape.ImageTokens} image tokens ({shape.Layers} layers + 2 frames of {shape.Side}x{shape.Side}) + {shape.TextTokens} text tokens");
        foreach (var r in new[] { plain, ckpt })
        {
            Console.WriteLine($"  {(r.Checkpointing ? "checkpointing" : "plain"),-14} RSS before {r.BeforeMb,7:F0} MB  peak {r.PeakMb,7:F0} MB  update's own peak {r.UpdateMb,7:F0} MB  time {r.Seconds,6:F2} s  grad norm {r.GradNorm:G9}");
        }

        Console.WriteLine($"  update peak ratio checkpointing/plain {ckpt.UpdateMb / plain.UpdateMb:F3}; whole-process peak ratio {ckpt.PeakMb / plain.PeakMb:F3}; time ratio {ckpt.Seconds / plain.Seconds:F2}");
        Console.WriteLine($"  gradient norms {(Math.Abs(ckpt.GradNorm - plain.GradNorm) <= 1e-5 * plain.GradNorm ? "agree" : "DIFFER")} (relative difference {Math.Abs(ckpt.GradNorm - plain.GradNorm) / plain.GradNorm:E1})");
    }

    private static Result RunChild(Shape shape, bool checkpointing)
    {
        var start = new ProcessStartInfo { RedirectStandardOutput = true, UseShellExecute = false };
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        start.FileName = self;
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            // Started as `dotnet StableLayers.Benchmarks.dll`: run the same assembly.
            start.ArgumentList.Add(Assembly.GetExecutingAssembly().Location);
        }

        start.ArgumentList.Add("ckpt-memory-child");
        start.ArgumentList.Add(checkpointing ? "on" : "off");
        foreach (var a in shape.ToArgs())
        {
            start.ArgumentList.Add(a);
        }

        start.Environment["MALLOC_MMAP_THRESHOLD_"] = "65536";
        using var child = Process.Start(start) ?? throw new InvalidOperationException("could not start the child process");
        string text = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        if (child.ExitCode != 0)
        {
            throw new InvalidOperationException($"child ({(checkpointing ? "checkpointing" : "plain")}) exited with {child.ExitCode}: {text}");
        }

        string line = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last();
        return JsonSerializer.Deserialize<Result>(line) ?? throw new InvalidOperationException($"bad child output: {text}");
    }

    /// <summary>The child: build, reset the high-water mark, one update, report as one JSON line.</summary>
    public static void Child(bool checkpointing, Shape shape)
    {
        set_num_threads(2);
        manual_seed(0);
        var config = TransformerConfig.Tiny(layers: shape.Blocks, heads: shape.Heads, headDim: shape.HeadDim, textDim: 64, inChannels: 64, outChannels: 16);
        using var model = new QwenImageTransformer2DModel(config);
        model.train();
        using var adapters = shape.FullParameter ? null : LoraAdapters.Inject(model, new LoraConfig(), seed: 1);
        if (adapters is not null)
        {
            using var noGrad = no_grad();
            foreach (var l in adapters.Layers)
            {
                l.B.normal_(0, 0.01);
            }
        }

        model.GradientCheckpointing = checkpointing;
        var frames = FrameShape.Layered(shape.Layers, shape.Side, shape.Side);
        long tokens = frames.Sum(f => (long)f.TokenCount);
        var latents = randn(shape.Batch, tokens, config.InChannels);
        var text = randn(shape.Batch, shape.TextTokens, config.JointAttentionDim);
        var mask = ones(shape.Batch, shape.TextTokens, dtype: ScalarType.Bool);
        var timestep = rand(shape.Batch);
        var target = randn(shape.Batch, tokens, config.OutputTokenChannels);
        var trainable = adapters?.TrainableParameters().ToList() ?? model.parameters().ToList();

        // Warm-up at a tiny shape so that one-time allocations (thread pools, kernels) are not counted.
        using (var warm = NewDisposeScope())
        {
            var small = FrameShape.Layered(1, 2, 2);
            long s = small.Sum(f => (long)f.TokenCount);
            model.forward(randn(1, s, config.InChannels), randn(1, 4, config.JointAttentionDim), null, rand(1), small).sum().backward();
            foreach (var p in trainable)
            {
                p.grad?.zero_();
            }
        }

        GC.Collect();
        GC.WaitForPendingFinalizers();
        HostMemory.ResetPeak();
        double before = HostMemory.ResidentBytes() / 1048576.0;
        var clock = Stopwatch.StartNew();
        double gradNorm;
        using (var scope = NewDisposeScope())
        {
            var y = model.forward(latents, text, mask, timestep, frames);
            nn.functional.mse_loss(y, target).backward();
            using var noGrad = no_grad();
            gradNorm = Math.Sqrt(trainable.Sum(p => p.grad is { } g ? g.pow(2).sum().item<float>() : 0.0));
        }

        double seconds = clock.Elapsed.TotalSeconds;
        double peak = HostMemory.PeakBytes() / 1048576.0;
        Console.WriteLine(JsonSerializer.Serialize(new Result(checkpointing, before, peak, seconds, gradNorm)));
    }

}
