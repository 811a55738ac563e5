using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using StableLayers.Core;
using StableLayers.Model.Weights;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Model.Lora;

/// <summary>
/// LoRA adapters attached to a base model (PEFT-style): injection on the Linears named by a <see cref="LoraConfig"/>,
/// enable/disable (disabled = the base model, the reference policy), merge/unmerge, the trainable parameter list, and
/// save/load as a safetensors file in the PEFT/diffusers key format
/// (<c>transformer.{module}.lora_A.weight</c> [r, in], <c>transformer.{module}.lora_B.weight</c> [out, r], float32).
/// The base model's modules and state_dict keys are unchanged: adapters act through forward hooks on the base
/// Linears and live here, not in the model tree. Disposing removes the hooks (unmerging first if merged).
/// </summary>
public sealed class LoraAdapters : IDisposable
{
    /// <summary>Key prefix of the transformer's adapters in a diffusers pipeline LoRA file.</summary>
    public const string KeyPrefix = "transformer.";

    /// <summary>diffusers' safetensors metadata key holding the adapter's LoraConfig as JSON.</summary>
    public const string DiffusersMetadataKey = "lora_adapter_metadata";

    private const string SuffixA = ".lora_A.weight";
    private const string SuffixB = ".lora_B.weight";

    private readonly Dictionary<string, LoraLinear> _byName;
    private bool _enabled = true;
    private bool _disposed;

    private LoraAdapters(LoraConfig config, List<LoraLinear> layers)
    {
        Config = config;
        Layers = layers;
        _byName = layers.ToDictionary(l => l.ModuleName, StringComparer.Ordinal);
    }

    public LoraConfig Config { get; }

    /// <summary>One adapter per targeted Linear, in the model's module order.</summary>
    public IReadOnlyList<LoraLinear> Layers { get; }

    public LoraLinear this[string moduleName] =>
        _byName.TryGetValue(moduleName, out var l) ? l : throw new KeyNotFoundException($"no LoRA adapter on '{moduleName}'");

    /// <summary>False: every hook returns the base output unchanged. Cannot change while merged.</summary>
    public bool Enabled
    {
        get => _enabled;
        set
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (IsMerged && value != _enabled)
            {
                throw new InvalidOperationException("unmerge the LoRA adapters before enabling or disabling them");
            }

            _enabled = value;
            foreach (var l in Layers)
            {
                l.Enabled = value;
            }
        }
    }

    public bool IsMerged { get; private set; }

    /// <summary>Number of trainable (adapter) parameters: rank x (in + out) per adapted Linear.</summary>
    public long TrainableParameterCount => Layers.Sum(l => l.A.numel() + l.B.numel());

    /// <summary>
    /// Attaches fresh adapters to every Linear of <paramref name="model"/> whose name matches the config, freezes all of
    /// the model's own parameters (requires_grad false) and optionally converts them to <paramref name="baseDType"/>
    /// (e.g. bfloat16; adapters stay float32). A is drawn like PEFT's default (kaiming-uniform with a = sqrt(5), i.e.
    /// U(-1/sqrt(in), 1/sqrt(in))) from a generator seeded with <paramref name="seed"/>, in module order; B is zero,
    /// so the adapted model starts exactly equal to the base.
    /// </summary>
    public static LoraAdapters Inject(nn.Module model, LoraConfig config, long seed, ScalarType? baseDType = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        var linears = new List<(string Name, Linear Module)>();
        var matched = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, module) in model.named_modules())
        {
            if (name.Length == 0 || !config.Targets(name))
            {
                continue;
            }

            if (module is not Linear linear)
            {
                throw new ArgumentException($"LoRA target '{name}' is a {module.GetType().Name}, not a Linear");
            }

            linears.Add((name, linear));
            foreach (var pattern in config.TargetModules.Where(p => name == p || name.EndsWith("." + p, StringComparison.Ordinal)))
            {
                matched.Add(pattern);
            }
        }

        var unmatched = config.TargetModules.Where(p => !matched.Contains(p)).ToList();
        if (unmatched.Count > 0)
        {
            throw new ArgumentException($"LoRA target modules match no Linear of the model: {string.Join(", ", unmatched)}");
        }

        var adapters = Build(model, config, linears, baseDType);
        var generator = new Generator(seed: unchecked((ulong)seed));
        using var noGrad = no_grad();
        foreach (var l in adapters.Layers)
        {
            using var scope = NewDisposeScope();
            double bound = 1.0 / Math.Sqrt(l.InFeatures);
            // Drawn on the CPU whatever the model's device, so a seed gives the same adapters everywhere; copied once.
            var u = rand([l.Rank, l.InFeatures], dtype: ScalarType.Float32, device: CPU, generator: generator);
            l.A.copy_((u * 2 - 1) * bound);
        }

        return adapters;
    }

    /// <summary>
    /// Reads a LoRA file written by <see cref="Save"/> (or diffusers/PEFT in the same key format, with or without the
    /// <c>transformer.</c> prefix) and attaches it to <paramref name="model"/> as in <see cref="Inject"/>. The rank is
    /// taken from the tensor shapes, alpha from the metadata (default: the rank, as diffusers does). Unknown modules,
    /// wrong shapes, unpaired or non-LoRA tensors and unreadable files raise <see cref="BadInputException"/> naming
    /// the file.
    /// </summary>
    public static LoraAdapters Load(nn.Module model, string path, ScalarType? baseDType = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(path);
        using var file = SafetensorsFile.Open(path);
        var pairs = ReadPairs(file);
        var linears = model.named_modules()
            .Where(m => m.module is Linear)
            .ToDictionary(m => m.name, m => (Linear)m.module, StringComparer.Ordinal);

        var problems = new List<string>();
        var rankByModule = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (module, (a, b)) in pairs)
        {
            if (!linears.TryGetValue(module, out var linear))
            {
                problems.Add($"'{a.Name}': the model has no Linear module '{module}'");
                continue;
            }

            long outF = linear.weight!.shape[0], inF = linear.weight.shape[1];
            if (a.Shape.Length != 2 || a.Shape[1] != inF || a.Shape[0] < 1)
            {
                problems.Add($"'{a.Name}': shape [{string.Join(",", a.Shape)}] is not [r, {inF}]");
            }
            else if (b.Shape.Length != 2 || b.Shape[0] != outF || b.Shape[1] != a.Shape[0])
            {
                problems.Add($"'{b.Name}': shape [{string.Join(",", b.Shape)}] is not [{outF}, {a.Shape[0]}]");
            }
            else
            {
                rankByModule[module] = a.Shape[0];
            }

            foreach (var e in new[] { a, b })
            {
                if (e.ScalarType is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float64))
                {
                    problems.Add($"'{e.Name}': dtype {e.DType} is not a floating-point type");
                }
            }
        }

        var ranks = rankByModule.Values.Distinct().Order().ToList();
        if (problems.Count == 0 && ranks.Count > 1)
        {
            problems.Add($"adapters of different ranks ({string.Join(", ", ranks)}) are not supported");
        }

        if (problems.Count > 0)
        {
            throw new BadInputException(path, "LoRA file does not fit the model:\n  " + string.Join("\n  ", problems));
        }

        int rank = checked((int)ranks[0]);
        var config = new LoraConfig { Rank = rank, Alpha = ReadAlpha(file, rank), TargetModules = ReadTargets(file, pairs.Keys) };
        var selected = model.named_modules()
            .Where(m => pairs.ContainsKey(m.name))
            .Select(m => (m.name, (Linear)m.module))
            .ToList();
        var adapters = Build(model, config, selected, baseDType);
        try
        {
            using var noGrad = no_grad();
            foreach (var l in adapters.Layers)
            {
                using var scope = NewDisposeScope();
                var (a, b) = pairs[l.ModuleName];
                l.A.copy_(file.Read(a.Name));
                l.B.copy_(file.Read(b.Name));
            }
        }
        catch
        {
            adapters.Dispose();
            throw;
        }

        return adapters;
    }

    /// <summary>The adapter parameters (every lora_A and lora_B weight, in module order): what the optimiser trains.</summary>
    public IReadOnlyList<Parameter> TrainableParameters() => [.. Layers.SelectMany(l => new[] { l.A, l.B })];

    /// <summary>Folds every adapter into its base weight (inference); the hooks then add nothing.</summary>
    public void Merge()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!Enabled)
        {
            throw new InvalidOperationException("cannot merge disabled LoRA adapters");
        }

        foreach (var l in Layers)
        {
            l.Merge();
        }

        IsMerged = true;
    }

    /// <summary>Restores the base weights (up to rounding in the base dtype) and re-activates the hooks.</summary>
    public void Unmerge()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        foreach (var l in Layers)
        {
            l.Unmerge();
        }

        IsMerged = false;
    }

    /// <summary>
    /// Merges the adapters into the base weights for good and disposes them: the model is left as a plain model whose
    /// weights include the adapters (PEFT's merge_and_unload).
    /// </summary>
    public void MergeAndUnload()
    {
        Merge();
        foreach (var l in Layers)
        {
            l.Detach();
        }

        IsMerged = false;
        Dispose();
    }

    /// <summary>The adapters' tensors under their PEFT/diffusers names, in module order (A then B).</summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> StateDict()
    {
        var list = new List<KeyValuePair<string, Tensor>>();
        foreach (var l in Layers)
        {
            list.Add(new(KeyPrefix + l.ModuleName + SuffixA, l.A));
            list.Add(new(KeyPrefix + l.ModuleName + SuffixB, l.B));
        }

        return list;
    }

    /// <summary>
    /// The safetensors header metadata: <c>rank</c>, <c>alpha</c>, <c>target_modules</c> (JSON list), and diffusers'
    /// <c>lora_adapter_metadata</c> (the LoraConfig as JSON with <c>transformer.</c>-prefixed keys).
    /// </summary>
    public IReadOnlyDictionary<string, string> Metadata()
    {
        var targets = new JsonArray([.. Config.TargetModules.Select(t => JsonValue.Create(t))]);
        var diffusers = new JsonObject
        {
            [KeyPrefix + "r"] = Config.Rank,
            [KeyPrefix + "lora_alpha"] = Config.Alpha,
            [KeyPrefix + "lora_dropout"] = Config.Dropout,
            [KeyPrefix + "target_modules"] = targets.DeepClone(),
        };
        return new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["format"] = "pt",
            ["rank"] = Config.Rank.ToString(CultureInfo.InvariantCulture),
            ["alpha"] = Config.Alpha.ToString("R", CultureInfo.InvariantCulture),
            ["target_modules"] = targets.ToJsonString(),
            [DiffusersMetadataKey] = diffusers.ToJsonString(),
        };
    }

    /// <summary>Writes the adapters as float32 safetensors with <see cref="Metadata"/> (atomically).</summary>
    public void Save(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        ObjectDisposedException.ThrowIf(_disposed, this);
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null)
        {
            Directory.CreateDirectory(dir);
        }

        SafetensorsWriter.WriteFile(path, StateDict(), ScalarType.Float32, Metadata());
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        if (IsMerged)
        {
            Unmerge();
        }

        foreach (var l in Layers)
        {
            l.Dispose();
        }

        _disposed = true;
    }

    private static LoraAdapters Build(nn.Module model, LoraConfig config, List<(string Name, Linear Module)> linears, ScalarType? baseDType)
    {
        var layers = new List<LoraLinear>();
        try
        {
            foreach (var (name, linear) in linears)
            {
                var l = new LoraLinear(name, linear, config.Rank, config.Alpha, config.Dropout);
                layers.Add(l);
                l.Attach();
            }
        }
        catch
        {
            foreach (var l in layers)
            {
                l.Dispose();
            }

            throw;
        }

        if (baseDType is { } dtype)
        {
            model.to(dtype);
        }

        foreach (var p in model.parameters())
        {
            p.requires_grad = false;
        }

        return new LoraAdapters(config, layers);
    }

    /// <summary>Groups the file's tensors into (lora_A, lora_B) per module name (prefix removed).</summary>
    private static Dictionary<string, (SafetensorsEntry A, SafetensorsEntry B)> ReadPairs(SafetensorsFile file)
    {
        var a = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
        var b = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
        var problems = new List<string>();
        foreach (var e in file.Entries)
        {
            string key = e.Name.StartsWith(KeyPrefix, StringComparison.Ordinal) ? e.Name[KeyPrefix.Length..] : e.Name;
            if (key.EndsWith(SuffixA, StringComparison.Ordinal))
            {
                a[key[..^SuffixA.Length]] = e;
            }
            else if (key.EndsWith(SuffixB, StringComparison.Ordinal))
            {
                b[key[..^SuffixB.Length]] = e;
            }
            else
            {
                problems.Add($"'{e.Name}' is not a LoRA weight (names must end in {SuffixA} or {SuffixB})");
            }
        }

        problems.AddRange(a.Keys.Where(k => !b.ContainsKey(k)).Select(k => $"'{k}' has lora_A but no lora_B"));
        problems.AddRange(b.Keys.Where(k => !a.ContainsKey(k)).Select(k => $"'{k}' has lora_B but no lora_A"));
        if (problems.Count == 0 && a.Count == 0)
        {
            problems.Add("no LoRA tensors in the file");
        }

        if (problems.Count > 0)
        {
            throw new BadInputException(file.Path, "not a usable LoRA file:\n  " + string.Join("\n  ", problems));
        }

        return a.ToDictionary(kv => kv.Key, kv => (kv.Value, b[kv.Key]), StringComparer.Ordinal);
    }

    /// <summary>alpha from our "alpha" key, else diffusers' lora_adapter_metadata, else the rank.</summary>
    /// <summary>
    /// The target patterns recorded in the file when they select exactly the modules it holds (so a saved, loaded
    /// and re-saved adapter keeps its metadata); otherwise the modules' full names.
    /// </summary>
    private static List<string> ReadTargets(SafetensorsFile file, IEnumerable<string> modules)
    {
        var names = modules.ToList();
        if (file.Metadata.TryGetValue("target_modules", out var text))
        {
            try
            {
                var patterns = JsonSerializer.Deserialize<List<string>>(text);
                if (patterns is { Count: > 0 })
                {
                    var recorded = new LoraConfig { TargetModules = patterns };
                    if (names.All(recorded.Targets) && patterns.All(p => names.Any(n => n == p || n.EndsWith("." + p, StringComparison.Ordinal))))
                    {
                        return patterns;
                    }
                }
            }
            catch (JsonException)
            {
                // Unreadable optional metadata: fall back to the module names.
            }
        }

        return names;
    }

    private static double ReadAlpha(SafetensorsFile file, int rank)
    {
        if (file.Metadata.TryGetValue("alpha", out var text))
        {
            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double alpha) && double.IsFinite(alpha) && alpha > 0
                ? alpha
                : throw new BadInputException(file.Path, $"metadata alpha '{text}' is not a positive number");
        }

        if (file.Metadata.TryGetValue(DiffusersMetadataKey, out var json))
        {
            try
            {
                var node = JsonNode.Parse(json) as JsonObject;
                var value = node?[KeyPrefix + "lora_alpha"] ?? node?["lora_alpha"];
                if (value is not null)
                {
                    double alpha = value.GetValue<double>();
                    return alpha > 0 && double.IsFinite(alpha)
                        ? alpha
                        : throw new BadInputException(file.Path, $"metadata lora_alpha {alpha} is not positive");
                }
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
            {
                throw new BadInputException(file.Path, $"metadata {DiffusersMetadataKey} is not valid: {ex.Message}", ex);
            }
        }

        return rank;
    }
}
