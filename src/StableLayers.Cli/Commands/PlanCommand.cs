using System.CommandLine;
using System.Globalization;
using StableLayers.Core;
using StableLayers.Model;
using StableLayers.Model.Planning;
using StableLayers.Model.Text;
using StableLayers.Model.Weights;

namespace StableLayers.Cli.Commands;

/// <summary>
/// <c>stable-layers plan</c>: the memory a GRPO run (or plain sampling) needs for a model config, size, layer count,
/// group size, dtype, LoRA rank and checkpointing switch, part by part, and which cards it fits with which micro-batch.
/// Nothing is loaded or allocated: the numbers come from <see cref="MemoryPlan"/>.
/// </summary>
public static class PlanCommand
{
    public static Command Build()
    {
        var config = new Option<string?>("--config") { Description = "Model config (configs/*.json), a model folder or its model_index.json; default: the released Qwen-Image-Layered architecture" };
        var resolution = new Option<string?>("--resolution") { Description = "Working size: N (N x N) or WxH; default: the config's resolution" };
        var layers = new Option<int>("--layers") { Description = "Layers N (N + 1 output frames and the condition frame)", DefaultValueFactory = _ => 4 };
        var group = new Option<int>("--group-size") { Description = "Candidates G per group", DefaultValueFactory = _ => 8 };
        var dtype = new Option<string>("--dtype") { Description = "Transformer dtype: bf16, fp16 or fp32", DefaultValueFactory = _ => "bf16" };
        var rank = new Option<int>("--lora-rank") { Description = "LoRA rank (0: sampling only, no update)", DefaultValueFactory = _ => 16 };
        var checkpointing = new Option<bool>("--checkpointing") { Description = "Recompute transformer blocks in backward (true|false)" };
        var microBatch = new Option<int?>("--micro-batch") { Description = "Also print the peaks at this many candidates per forward/backward" };
        var textTokens = new Option<int>("--text-tokens") { Description = "Prompt tokens per candidate", DefaultValueFactory = _ => 256 };
        var window = new Option<int>("--sde-window") { Description = "Stored SDE-window steps per candidate", DefaultValueFactory = _ => 2 };
        var textEncoder = new Option<string>("--text-encoder") { Description = "The released model's Qwen2.5-VL-7B text encoder: precomputed (a prompt table, not loaded), offload (loaded, the prompt encoded once, then released: train with one prompt) or resident (kept on the device: per-image prompts)", DefaultValueFactory = _ => "precomputed" };
        textEncoder.AcceptOnlyFromAmong("precomputed", "offload", "resident");
        var cmd = new Command("plan", "Memory plan of GRPO training / sampling: each part, per-candidate activations, and the verdict for 24/48/80/141 GB cards")
        {
            config, resolution, layers, group, dtype, rank, checkpointing, microBatch, textTokens, window, textEncoder,
        };
        cmd.SetAction(parse =>
        {
            StableLayersCli.ApplyGlobalOptions(parse);
            var (model, source, folder) = LoadConfig(parse.GetValue(config));
            var (width, height) = ParseResolution(parse.GetValue(resolution), model.Resolution);
            string dtypeText = parse.GetRequiredValue(dtype);
            var planDType = PlanDTypeExtensions.Parse(dtypeText) ?? throw new BadInputException("--dtype", $"'{dtypeText}' is not bf16, fp16 or fp32");
            var placement = parse.GetValue(textEncoder) switch
            {
                "resident" => TextEncoderPlacement.Resident,
                "offload" => TextEncoderPlacement.Offloaded,
                _ => TextEncoderPlacement.Precomputed,
            };
            var (encoderName, encoderParams, qwen) = TextEncoder(model, folder);
            var request = new MemoryPlanRequest
            {
                Transformer = model.Transformer,
                Vae = model.Vae,
                TextEncoderName = encoderName,
                TextEncoderParameters = encoderParams,
                QwenTextEncoder = qwen,
                TextEncoderPlacement = placement,
                Width = width,
                Height = height,
                Layers = parse.GetValue(layers),
                GroupSize = parse.GetValue(group),
                DType = planDType,
                LoraRank = parse.GetValue(rank),
                Checkpointing = parse.GetValue(checkpointing),
                TextTokens = parse.GetValue(textTokens),
                WindowSteps = parse.GetValue(window),
            };
            MemoryPlan plan;
            try
            {
                plan = MemoryPlan.Compute(request);
            }
            catch (ArgumentException e)
            {
                string option = e.Message.StartsWith("--", StringComparison.Ordinal) ? e.Message.Split(':')[0] : source;
                throw new BadInputException(option, e.Message.StartsWith("--", StringComparison.Ordinal) ? e.Message[(option.Length + 1)..].Trim() : e.Message);
            }

            int? m = parse.GetValue(microBatch);
            if (m is < 1)
            {
                throw new BadInputException("--micro-batch", $"must be at least 1, got {m}");
            }

            Write(parse.InvocationConfiguration.Output, plan, model.Name, m);
            return StableLayersCli.ExitOk;
        });
        return cmd;
    }

    public static void Write(TextWriter o, MemoryPlan plan, string name, int? microBatch = null)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(plan);
        var r = plan.Request;
        var t = r.Transformer;
        o.WriteLine($"plan: {name} ({t.NumLayers} blocks, width {t.InnerDim} = {t.NumAttentionHeads} x {t.AttentionHeadDim}), {r.Width}x{r.Height}, {r.Layers} layers, G = {r.GroupSize}, {r.DType.Name()}, "
            + (plan.Trains ? $"LoRA r{r.LoraRank}, checkpointing {(r.Checkpointing ? "on" : "off")}" : "no LoRA (sampling only)"));
        o.WriteLine($"tokens per candidate: {r.ImageTokens} image ({r.Layers + 2} frames x {r.TokensPerFrame}) + {r.TextTokens} text ({r.EncoderTokens} through the text encoder); attention: fused scaled_dot_product_attention "
            + "(flash on the CPU, flash/memory-efficient on CUDA: no S x S scores are stored)");
        o.WriteLine();
        o.WriteLine($"{"part",-28} {"size",11}  detail");
        foreach (var p in plan.Parts())
        {
            o.WriteLine($"{p.Name,-28} {MemoryPlan.Mb(p.Bytes),11}  {p.Detail}");
        }

        o.WriteLine();
        o.WriteLine($"card sizes: nvidia-smi totals minus {MemoryPlan.CardReserveGiB.ToString(CultureInfo.InvariantCulture)} GiB for the CUDA context and workspaces; micro-batch = candidates per forward (sampling) or per forward+backward (update), at most G");
        o.WriteLine($"{"card",-7} {"usable",10}  {"sampling",-22} {"update",-22} verdict");
        foreach (var v in plan.Verdicts())
        {
            string sampling = v.SamplingMicroBatch > 0 ? $"{v.SamplingMicroBatch} ({MemoryPlan.Gb(v.SamplingPeakAtMax)})" : $"- ({MemoryPlan.Gb(plan.SamplingPeak(1))} at 1)";
            string update = !plan.Trains ? "n/a" : v.UpdateMicroBatch > 0 ? $"{v.UpdateMicroBatch} ({MemoryPlan.Gb(v.UpdatePeakAtMax)})" : $"- ({MemoryPlan.Gb(plan.UpdatePeak(1))} at 1)";
            o.WriteLine($"{v.Card,-7} {MemoryPlan.Gb(v.UsableBytes),10}  {sampling,-22} {update,-22} {Verdict(plan, v)}");
        }

        if (microBatch is { } m)
        {
            o.WriteLine();
            o.WriteLine($"at micro-batch {m}: sampling peak {MemoryPlan.Gb(plan.SamplingPeak(m))}" + (plan.Trains ? $", update peak {MemoryPlan.Gb(plan.UpdatePeak(m))}" : string.Empty));
        }

        o.WriteLine();
        o.WriteLine("not modelled: VAE encode/decode activations (the decode of G x N layers runs after sampling, outside these peaks), allocator fragmentation.");
    }

    private static string Verdict(MemoryPlan plan, CardVerdict v)
    {
        int g = plan.Request.GroupSize;
        if (plan.StepFixed > v.UsableBytes)
        {
            return "does not fit: the weights and state alone exceed the card";
        }

        if (!v.EncodingFits)
        {
            return $"does not fit: encoding the prompt with every module loaded needs {MemoryPlan.Gb(plan.EncodingPeak)} (use a precomputed table: encode-prompts)";
        }

        if (v.SamplingMicroBatch == 0)
        {
            return "does not fit: one candidate's sampling forward is too large";
        }

        if (!plan.Trains)
        {
            return v.SamplingMicroBatch >= g ? $"fits: all {g} candidates in one forward" : $"fits in {Passes(g, v.SamplingMicroBatch)} forwards per step";
        }

        if (v.UpdateMicroBatch == 0)
        {
            return plan.Request.Checkpointing
                ? "does not fit: one candidate's update is too large even with checkpointing"
                : "does not fit: one candidate's update is too large (try --checkpointing true)";
        }

        if (v.SamplingMicroBatch >= g && v.UpdateMicroBatch >= g)
        {
            return $"fits: all {g} candidates in one pass, as `train` runs them";
        }

        // GroupRollout and GrpoUpdate batch the whole group today, so smaller micro-batches are what would fit, not what runs.
        return $"fits only in micro-batches (sampling {Passes(g, v.SamplingMicroBatch)}, update {Passes(g, v.UpdateMicroBatch)} passes); `train` batches all {g} (needs {MemoryPlan.Gb(Math.Max(plan.SamplingPeak(g), plan.UpdatePeak(g)))})";
    }

    private static int Passes(int g, int microBatch) => (g + microBatch - 1) / microBatch;

    private static (LayeredModelConfig Config, string Source, string? Folder) LoadConfig(string? path)
    {
        if (path is null)
        {
            return (new LayeredModelConfig { Name = "qwen-image-layered" }, "released architecture", null);
        }

        string file = Directory.Exists(path) ? Path.Combine(path, LayeredModel.IndexFile) : path;
        if (!File.Exists(file))
        {
            throw new BadInputException(path, Directory.Exists(path) ? $"model folder has no {LayeredModel.IndexFile}" : "model config not found");
        }

        string? folder = Path.GetFileName(file) == LayeredModel.IndexFile ? Path.GetDirectoryName(Path.GetFullPath(file)) : null;
        return (folder is not null && LayeredModelConfig.IsDiffusersIndex(file) ? LayeredModelConfig.LoadDiffusersFolder(folder) : LayeredModelConfig.Load(file), file, folder);
    }

    private static (int Width, int Height) ParseResolution(string? text, int fallback)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return (fallback, fallback);
        }

        var parts = text.ToLowerInvariant().Split('x');
        if (parts.Length is < 1 or > 2 || !parts.All(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0))
        {
            throw new BadInputException("--resolution", $"'{text}' is not N or WxH with positive integers");
        }

        int w = int.Parse(parts[0], CultureInfo.InvariantCulture);
        return (w, parts.Length == 2 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : w);
    }

    /// <summary>
    /// The released model's Qwen2.5-VL language model: from the folder's text_encoder/config.json when there is one,
    /// else the published Qwen2.5-VL-7B shape. A tiny preset's learned encoder is part of the model, counted from its
    /// weights file when the config came from a folder.
    /// </summary>
    private static (string Name, long Parameters, Qwen25VlTextConfig? Qwen) TextEncoder(LayeredModelConfig model, string? folder)
    {
        if (model.TextEncoder is null)
        {
            string? configPath = folder is null ? null : Path.Combine(folder, "text_encoder", "config.json");
            var qwen = configPath is not null && File.Exists(configPath) ? Qwen25VlTextConfig.Load(configPath) : Qwen25VlTextConfig.Qwen25Vl7B;
            return ($"Qwen2.5-VL language model ({qwen.NumHiddenLayers} layers x {qwen.HiddenSize})", 0, qwen);
        }

        string? weights = folder is null ? null : Path.Combine(folder, "text_encoder", "diffusion_pytorch_model.safetensors");
        if (weights is null || !File.Exists(weights))
        {
            return ("tiny text encoder (no weights file to count)", 0, null);
        }

        using var file = SafetensorsFile.Open(weights);
        return ("tiny text encoder", file.Entries.Sum(e => e.ElementCount), null);
    }
}
