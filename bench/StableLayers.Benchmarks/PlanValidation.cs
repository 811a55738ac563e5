using System.Globalization;
using System.Runtime.InteropServices;
using StableLayers.Model.Planning;
using StableLayers.Model.Transformer;

namespace StableLayers.Benchmarks;

/// <summary>
/// `plan-validate` mode: for a few configurations, the memory planner's prediction against the peak resident memory
/// measured on the CPU (each case in its own child process, see <see cref="PlanMeasurement"/>): weights, the sampling
/// forward (no grad) and the GRPO-style update (forward + backward + AdamW on the LoRA adapters).
/// </summary>
public static class PlanValidation
{
    /// <summary>Three small configurations, chosen to weigh different terms: depth (block outputs kept), dtype, width and tokens.</summary>
    public static IReadOnlyList<PlanCase> SmallCases { get; } =
    [
        new("deep-bf16", Width: 256, Heads: 4, Blocks: 8, Pixels: 256, Layers: 2, TextTokens: 32, PlanDType.BF16, LoraRank: 16, Candidates: 2, Checkpointing: false),
        new("wide-fp32", Width: 512, Heads: 8, Blocks: 2, Pixels: 384, Layers: 3, TextTokens: 48, PlanDType.FP32, LoraRank: 8, Candidates: 1, Checkpointing: false),
        new("tokens-bf16", Width: 384, Heads: 6, Blocks: 3, Pixels: 320, Layers: 4, TextTokens: 64, PlanDType.BF16, LoraRank: 32, Candidates: 1, Checkpointing: false),
    ];

    /// <summary>The released architecture's width (24 heads x 128), two blocks.</summary>
    public static PlanCase FullWidth(int pixels, bool checkpointing = false) =>
        new($"full-width-{pixels}px{(checkpointing ? "-ckpt" : "")}", Width: 3072, Heads: 24, Blocks: 2, Pixels: pixels, Layers: 4, TextTokens: 64, PlanDType.BF16, LoraRank: 16, Candidates: 1, Checkpointing: checkpointing);

    public static MemoryPlan Plan(PlanCase c)
    {
        ArgumentNullException.ThrowIfNull(c);
        return MemoryPlan.Compute(new MemoryPlanRequest
        {
            Transformer = c.Transformer,
            Width = c.Pixels,
            Height = c.Pixels,
            Layers = c.Layers,
            GroupSize = c.Candidates,
            DType = c.DType,
            LoraRank = c.LoraRank,
            Checkpointing = c.Checkpointing,
            TextTokens = c.TextTokens,
        });
    }

    /// <summary>Predicted bytes of the three phases the child measures (no VAE, no rollouts: it runs the transformer only).</summary>
    public static PlanMeasured Predict(PlanCase c)
    {
        var plan = Plan(c);
        var a = plan.Activations;
        double weights = plan.TransformerWeights + plan.LoraWeights;
        // The child's mask (bool) and loss target (float32 velocity) are tiny beside the rest but are counted.
        double extras = (c.Candidates * c.TextTokens) + (c.Candidates * plan.Request.ImageTokens * c.Transformer.OutputTokenChannels * 4.0);
        double sampling = weights + a.SharedPerForward + (c.Candidates * plan.SamplingPerCandidate);
        double update = weights + plan.LoraTrainingState + a.SharedPerForward + extras + (c.Candidates * plan.UpdatePerCandidate);
        return new PlanMeasured((long)weights, (long)sampling, (long)update, 0, 0);
    }

    public static int Run(IReadOnlyList<string> args)
    {
        var cases = new List<PlanCase>();
        bool small = args.Count == 0 || args.Contains("small") || args.Contains("all");
        if (small)
        {
            cases.AddRange(SmallCases);
        }

        foreach (var a in args.Where(a => a.StartsWith("full", StringComparison.Ordinal)))
        {
            // full[:PIXELS][:ckpt]
            var parts = a.Split(':');
            int px = parts.Length > 1 && int.TryParse(parts[1], CultureInfo.InvariantCulture, out int p) ? p : 640;
            cases.Add(FullWidth(px, parts.Contains("ckpt")));
        }

        if (args.Contains("ckpt"))
        {
            cases.AddRange(SmallCases.Select(c => c with { Name = c.Name + "-ckpt", Checkpointing = true }));
        }

        Console.WriteLine("Memory planner vs measured peak resident memory on the CPU (libtorch, one child process per case; bytes above the RSS after libtorch initialised).");
        Console.WriteLine("Each case: weights + LoRA; one sampling forward without gradients over G candidates; one update: forward with gradients, scalar loss, backward, AdamW step.");
        Console.WriteLine($"attention: scaled_dot_product_attention, fused (flash) kernel on the CPU; {Environment.ProcessorCount} cores");
        Console.WriteLine();
        Console.WriteLine($"{"case",-22} {"d",5} {"L",3} {"tokens",7} {"dtype",5} {"r",3} {"G",2} {"phase",-9} {"predicted",10} {"measured",10} {"error",7}  {"time",7}");
        var errors = new List<double>();
        foreach (var c in cases)
        {
            var predicted = Predict(c);
            var plan = Plan(c);
            var measured = PlanMeasurement.Measure(c);
            foreach (var (phase, p, m, t) in new[]
            {
                ("weights", predicted.Weights, measured.Weights, 0.0),
                ("sampling", predicted.SamplingPeak, measured.SamplingPeak, measured.SamplingSeconds),
                ("update", predicted.UpdatePeak, measured.UpdatePeak, measured.UpdateSeconds),
            })
            {
                double error = (p - (double)m) / m;
                if (phase != "weights")
                {
                    errors.Add(Math.Abs(error));
                }

                Console.WriteLine($"{c.Name,-22} {c.Width,5} {c.Blocks,3} {plan.Request.ImageTokens + c.TextTokens,7} {c.DType.Name(),5} {c.LoraRank,3} {c.Candidates,2} {phase,-9} {MemoryPlan.Mb(p),10} {MemoryPlan.Mb(m),10} {error,7:+0.0%;-0.0%}  {(t > 0 ? $"{t:F1} s" : ""),7}");
            }
        }

        Console.WriteLine();
        Console.WriteLine($"largest |error| of the sampling and update peaks: {errors.DefaultIfEmpty(0).Max():P1} (target: within 20%)");
        return errors.All(e => e <= 0.20) ? 0 : 1;
    }
}

/// <summary>Switches the transformer's activation checkpointing where the model has it.</summary>
internal static class Checkpointing
{
    public static void Set(QwenImageTransformer2DModel model, bool on)
    {
        var property = typeof(QwenImageTransformer2DModel).GetProperty("GradientCheckpointing");
        if (property is null)
        {
            if (on)
            {
                throw new NotSupportedException("this build's transformer has no GradientCheckpointing switch");
            }

            return;
        }

        property.SetValue(model, on);
    }
}
