using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using StableLayers.Core;
using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges;
using StableLayers.Judges.LayerCount;
using StableLayers.Judges.Rubric;
using StableLayers.Model;
using StableLayers.Model.Inference;
using StableLayers.Model.Text;

namespace StableLayers.Cli.Commands;

/// <summary><c>stable-layers decompose IMAGE... --layers N|auto [--min-layers 2 --max-layers 8] [--model DIR] [--lora FILE] --out DIR [--format folder,ora,psd] [--device D] [--dtype T] [--prompt P | --caption auto --caption-endpoint URL --caption-model M]</c>.</summary>
public static class DecomposeCommand
{
    private static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"];

    public static Command Build()
    {
        var inputs = new Argument<string[]>("images") { Description = "Image files, folders of images, or a folder of layered samples (each sample's composite.png is decomposed, keeping its name)", Arity = ArgumentArity.OneOrMore };
        var layers = new Option<string?>("--layers") { Description = "Number of output layers, background included (default 4; for layered samples, each sample's own layer count), or auto: chosen per image in --min-layers..--max-layers" };
        var minLayers = new Option<int?>("--min-layers") { Description = $"Fewest layers --layers auto may choose (default {LayerCountRange.Default.Min})" };
        var maxLayers = new Option<int?>("--max-layers") { Description = $"Most layers --layers auto may choose (default {LayerCountRange.Default.Max})" };
        var autoMethod = new Option<string>("--auto-method") { Description = "How --layers auto chooses: judge (decompose at every count, the offline rubric judge ranks them) or count (decompose at the maximum, count the distinct layers, decompose again)", DefaultValueFactory = _ => "judge" };
        autoMethod.AcceptOnlyFromAmong("judge", "count");
        var model = new Option<DirectoryInfo?>("--model") { Description = "Model folder (default: the shipped tiny base, models/tiny-base)" };
        var steps = new Option<int>("--steps") { Description = "Sampling steps", DefaultValueFactory = _ => 20 };
        var sampler = new Option<string>("--sampler") { Description = "euler or heun", DefaultValueFactory = _ => "euler" };
        sampler.AcceptOnlyFromAmong("euler", "heun");
        var cfgScale = new Option<float>("--cfg") { Description = "True classifier-free guidance scale (1 = off)", DefaultValueFactory = _ => 1f };
        var prompt = new Option<string>("--prompt") { Description = "Text prompt (the tiny model understands synth-style captions; a released-layout folder encodes it with its Qwen2.5-VL, at most 1024 tokens)", DefaultValueFactory = _ => string.Empty };
        var seed = new Option<long>("--seed") { Description = "Noise seed of the first image; the k-th image (in the order listed, folders sorted by name) uses seed + k, so every image gets its own noise", DefaultValueFactory = _ => 0 };
        var output = new Option<DirectoryInfo>("--out") { Description = "Output folder: one sub-folder per image", Required = true };
        var lora = new Option<FileInfo?>("--lora") { Description = "LoRA adapter (.safetensors, PEFT/diffusers keys) merged into the transformer before sampling" };
        var format = new Option<string>("--format") { Description = "Comma-separated: folder, ora, psd", DefaultValueFactory = _ => "folder" };
        var batch = new Option<int>("--batch-size") { Description = "Images decomposed together (those sharing a size bucket and layer count run as one batch; same results as one at a time up to float rounding)", DefaultValueFactory = _ => 1 };
        var device = DeviceOption.Create();
        var dtype = DTypeOption.Create();
        var captions = new CaptionCliOptions();
        var cmd = new Command("decompose", "Decompose images into RGBA layers")
        {
            inputs, layers, minLayers, maxLayers, autoMethod, model, steps, sampler, cfgScale, prompt, seed, output, format, lora, batch, device, dtype,
        };
        captions.AddTo(cmd);
        cmd.SetAction(parse =>
        {
            StableLayersCli.ApplyGlobalOptions(parse);
            var formats = parse.GetRequiredValue(format).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var f in formats)
            {
                if (f is not ("folder" or "ora" or "psd"))
                {
                    throw new BadInputException("--format", $"unknown format '{f}' (folder, ora, psd)");
                }
            }

            int batchSize = parse.GetValue(batch);
            if (batchSize < 1)
            {
                throw new BadInputException("--batch-size", $"must be at least 1, got {batchSize}");
            }

            var (requested, auto) = ParseLayers(parse.GetValue(layers), parse.GetValue(minLayers), parse.GetValue(maxLayers),
                parse.GetValue(autoMethod) == "count" ? LayerCountMethod.Count : LayerCountMethod.Judge);

            var captionSettings = captions.Resolve(parse);
            var computeDevice = DeviceOption.Resolve(parse, device);
            var computeDType = DTypeOption.Resolve(parse, dtype, computeDevice);
            var jobs = ExpandInputs(parse.GetRequiredValue(inputs));
            string modelDir = parse.GetValue(model)?.FullName ?? DefaultModelDir();
            using var loaded = LayeredModel.Load(modelDir, computeDevice, computeDType);
            string? loraPath = parse.GetValue(lora)?.FullName;
            if (loraPath is not null)
            {
                var adapter = loaded.MergeLora(loraPath);
                parse.InvocationConfiguration.Output.WriteLine($"merged LoRA {Path.GetFileName(loraPath)} (rank {adapter.Rank}, alpha {adapter.Alpha}, {adapter.TargetModules.Count} modules)");
            }

            // The reference pipeline silently cuts a prompt over 1024 tokens; a user should know instead.
            if (loaded.Prompts is QwenPromptEncoder qwen)
            {
                qwen.CheckLength(parse.GetValue(prompt) ?? string.Empty);
            }

            // The released pipeline captions an image only when its prompt is empty (None, "" or " ").
            bool wantsCaption = captionSettings is not null && string.IsNullOrWhiteSpace(parse.GetValue(prompt));
            if (captionSettings is not null && loaded.Prompts is not QwenPromptEncoder)
            {
                throw new BadInputException("--caption", "auto captions need a model in the released layout (Qwen2.5-VL prompts); this model's prompts are synth-style captions");
            }

            using var captioner = wantsCaption ? CaptionCliOptions.Create(captionSettings!.Value) : null;
            var decomposer = new LayeredDecomposer(loaded);
            var options = new DecomposeOptions
            {
                Steps = parse.GetValue(steps),
                Sampler = parse.GetValue(sampler) == "heun" ? SamplerKind.Heun : SamplerKind.Euler,
                Cfg = parse.GetValue(cfgScale),
                Prompt = parse.GetValue(prompt) ?? string.Empty,
                Seed = parse.GetValue(seed),
            };
            string outDir = parse.GetRequiredValue(output).FullName;
            var stdout = parse.InvocationConfiguration.Output;
            int failed = 0;
            var error = parse.InvocationConfiguration.Error;
            if (auto is not null)
            {
                return DecomposeAuto(jobs, decomposer, options, auto, outDir, formats, modelDir, loraPath, stdout, error);
            }

            for (int first = 0; first < jobs.Count; first += batchSize)
            {
                var sw = Stopwatch.StartNew();
                var chunk = new List<(string File, string Id, RgbaImage Image, DecomposeOptions Options)>();
                for (int k = first; k < Math.Min(jobs.Count, first + batchSize); k++)
                {
                    var (file, id, sampleLayers) = jobs[k];
                    RgbaImage image;
                    try
                    {
                        image = PngCodec.Read(file);
                    }
                    catch (BadInputException e)
                    {
                        failed++;
                        error.WriteLine($"error: {e.Message}");
                        continue;
                    }

                    // One seed for every image would give every image the same starting noise: an evaluation over a
                    // folder would then sample one noise draw, not many (all 5-layer designs once came out with the
                    // same blank top layer). Consecutive seeds match the trainer's held-out evaluation (seed = index).
                    chunk.Add((file, id, image, options with
                    {
                        Layers = requested ?? sampleLayers ?? 4,
                        Seed = options.Seed + k,
                        Prompt = captioner is null ? options.Prompt : Caption(captioner, file, image, stdout),
                    }));
                }

                if (chunk.Count == 0)
                {
                    continue;
                }

                var stacks = decomposer.Decompose(chunk.Select(c => c.Image).ToList(), chunk.Select(c => c.Options).ToList());
                double seconds = sw.Elapsed.TotalSeconds / chunk.Count;
                for (int j = 0; j < chunk.Count; j++)
                {
                    var (file, id, image, imageOptions) = chunk[j];
                    var stack = stacks[j];
                    try
                    {
                        string dir = Path.Combine(outDir, id);
                        var source = new LayerSource($"stable-layers decompose {Path.GetFileName(file)} (model {Path.GetFileName(modelDir)}{(loraPath is null ? "" : ", LoRA " + Path.GetFileName(loraPath))}, seed {imageOptions.Seed})", null);
                        WriteOutputs(outDir, id, dir, stack, source, image, formats);

                        stdout.WriteLine($"{file}: {stack.Count} layers in {seconds:F1}s -> {dir}");
                    }
                    catch (BadInputException e)
                    {
                        failed++;
                        error.WriteLine($"error: {e.Message}");
                    }
                }
            }

            return failed == 0 ? StableLayersCli.ExitOk : StableLayersCli.ExitBadInput;
        });
        return cmd;
    }

    /// <summary>Writes one decomposition in every requested format (the layered folder when none is named).</summary>
    private static void WriteOutputs(string outDir, string id, string dir, LayerStack stack, LayerSource source, RgbaImage image, string[] formats)
    {
        if (formats.Contains("folder") || formats.Length == 0)
        {
            LayeredFolder.Write(dir, stack, source, input: image);
        }

        if (formats.Contains("ora"))
        {
            LayeredFile.Write(Path.Combine(outDir, id + ".ora"), stack);
        }

        if (formats.Contains("psd"))
        {
            LayeredFile.Write(Path.Combine(outDir, id + ".psd"), stack);
        }
    }

    /// <summary>
    /// The image's automatic caption. A failed caption is not skipped like an unreadable image: the endpoint is wrong
    /// or down for every image, so the command stops at the first one with its one-line error.
    /// </summary>
    private static string Caption(Judges.Captions.VlmCaptioner captioner, string file, RgbaImage image, TextWriter stdout)
    {
        int hits = captioner.CacheHits;
        string caption = captioner.CaptionAsync(image).GetAwaiter().GetResult();
        string oneLine = caption.ReplaceLineEndings(" ");
        stdout.WriteLine($"{file}: caption{(captioner.CacheHits > hits ? " (cached)" : "")}: {(oneLine.Length <= 200 ? oneLine : oneLine[..200] + "...")}");
        return caption;
    }

    /// <summary>
    /// --layers as a count (1..16) or "auto" with its range; --min-layers / --max-layers without auto are refused rather
    /// than silently ignored.
    /// </summary>
    public static (int? Layers, LayerCountSettings? Auto) ParseLayers(string? layers, int? min, int? max, LayerCountMethod method)
    {
        if (string.Equals(layers, "auto", StringComparison.OrdinalIgnoreCase))
        {
            var range = new LayerCountRange(min ?? LayerCountRange.Default.Min, max ?? Math.Max(LayerCountRange.Default.Max, min ?? 0));
            range.Validate();
            return (null, new LayerCountSettings { Range = range, Method = method });
        }

        if (min is not null || max is not null)
        {
            throw new BadInputException(min is not null ? "--min-layers" : "--max-layers", "only used with --layers auto");
        }

        if (layers is null)
        {
            return (null, null);
        }

        if (!int.TryParse(layers, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) || n < 1 || n > 16)
        {
            throw new BadInputException("--layers", $"must be 1..16 or auto, got '{layers}'");
        }

        return (n, null);
    }

    /// <summary>
    /// --layers auto: each image on its own (candidates differ in layer count, so nothing batches), the chosen
    /// decomposition written like a fixed-count one, and beside it &lt;id&gt;.layers-auto.json with every candidate.
    /// </summary>
    private static int DecomposeAuto(List<(string File, string Id, int? Layers)> jobs, LayeredDecomposer decomposer, DecomposeOptions options,
        LayerCountSettings auto, string outDir, string[] formats, string modelDir, string? loraPath, TextWriter stdout, TextWriter error)
    {
        var selector = new LayerCountSelector(new RubricJudge());
        int failed = 0;
        for (int k = 0; k < jobs.Count; k++)
        {
            var (file, id, _) = jobs[k];
            try
            {
                var sw = Stopwatch.StartNew();
                var image = PngCodec.Read(file);
                var imageOptions = options with { Seed = options.Seed + k };
                var selection = selector.SelectAsync(image, auto, (n, ct) => decomposer.Decompose(image, imageOptions with { Layers = n }, ct))
                    .GetAwaiter().GetResult();
                var stack = selection.Stack;
                string dir = Path.Combine(outDir, id);
                var source = new LayerSource($"stable-layers decompose {Path.GetFileName(file)} --layers auto (model {Path.GetFileName(modelDir)}{(loraPath is null ? "" : ", LoRA " + Path.GetFileName(loraPath))}, seed {imageOptions.Seed}, {selection.Layers} layers chosen by {selection.Method.ToString().ToLowerInvariant()})", null);
                WriteOutputs(outDir, id, dir, stack, source, image, formats);

                Directory.CreateDirectory(outDir);
                AtomicFile.WriteAllText(Path.Combine(outDir, id + ".layers-auto.json"), JsonSerializer.Serialize(AutoReport.Of(selection), AutoReport.JsonOptions));
                string scores = string.Join(" ", selection.Candidates.Select(c => c.Reward is double r
                    ? string.Create(CultureInfo.InvariantCulture, $"{c.Layers}:{r:F3}")
                    : c.DistinctLayers is int d ? string.Create(CultureInfo.InvariantCulture, $"{c.Layers}:{d} distinct") : $"{c.Layers}:-"));
                stdout.WriteLine($"{file}: {stack.Count} layers chosen ({scores}) in {sw.Elapsed.TotalSeconds:F1}s -> {dir}");
            }
            catch (BadInputException e)
            {
                failed++;
                error.WriteLine($"error: {e.Message}");
            }
        }

        return failed == 0 ? StableLayersCli.ExitOk : StableLayersCli.ExitBadInput;
    }

    /// <summary>The &lt;id&gt;.layers-auto.json file: the choice and every candidate's layer count and scores.</summary>
    private sealed record AutoReport(string Method, int Chosen, string? Judge, IReadOnlyList<AutoReport.Candidate> Candidates)
    {
        public static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

        public static AutoReport Of(LayerCountSelection s) => new(
            s.Method.ToString().ToLowerInvariant(),
            s.Layers,
            s.Judgement?.Judge,
            s.Candidates.Select(c => new Candidate(c.Layers, c.Reward, c.Judgement?.Phase1Reward, c.DistinctLayers, c.Judgement?.Error)).ToArray());

        public sealed record Candidate(int Layers, double? Reward, double? Phase1Reward, int? DistinctLayers, string? Error);
    }

    /// <summary>models/tiny-base beside the executable's repository (walks up from the binary), else under the current folder.</summary>
    public static string DefaultModelDir()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null)
        {
            var candidate = Path.Combine(dir.FullName, "models", "tiny-base");
            if (File.Exists(Path.Combine(candidate, LayeredModel.IndexFile)))
            {
                return candidate;
            }

            dir = dir.Parent;
        }

        return Path.Combine(Environment.CurrentDirectory, "models", "tiny-base");
    }

    /// <summary>Files to decompose with their output id and, for layered samples, their ground-truth layer count.</summary>
    private static List<(string File, string Id, int? Layers)> ExpandInputs(IEnumerable<string> inputs)
    {
        var jobs = new List<(string, string, int?)>();
        foreach (var input in inputs)
        {
            if (Directory.Exists(input))
            {
                var samples = Directory.GetDirectories(input).Where(LayeredFolder.IsLayeredFolder).Order(StringComparer.Ordinal).ToList();
                foreach (var sample in samples)
                {
                    jobs.Add((Path.Combine(sample, LayeredFolder.CompositeFile), Path.GetFileName(sample), LayeredFolder.ReadManifestOf(sample).Layers.Count));
                }

                jobs.AddRange(Directory.GetFiles(input)
                    .Where(f => ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                    .Order(StringComparer.Ordinal)
                    .Select(f => (f, Path.GetFileNameWithoutExtension(f), (int?)null)));
            }
            else if (File.Exists(input))
            {
                jobs.Add((input, Path.GetFileNameWithoutExtension(input), null));
            }
            else
            {
                throw new BadInputException(input, "no such image or folder");
            }
        }

        if (jobs.Count == 0)
        {
            throw new BadInputException(string.Join(", ", inputs), "no images found");
        }

        return jobs;
    }
}
