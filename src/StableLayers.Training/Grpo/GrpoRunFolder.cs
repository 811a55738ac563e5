using System.Text.Json;
using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Model.Lora;
using StableLayers.Training.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;

namespace StableLayers.Training.Grpo;

/// <summary>
/// A GRPO run folder: config.json, metrics.jsonl (a line per step), eval.jsonl, grids/ (training samples),
/// eval/ (held-out decompositions), the latest lora.safetensors and an atomic checkpoint/ (LoRA, AdamW state,
/// run state). Log lines past the checkpoint are dropped on resume, so a resumed run's logs equal a straight run's.
/// </summary>
public sealed class GrpoRunFolder(string dir)
{
    public const string MetricsFile = "metrics.jsonl";
    public const string EvalFile = "eval.jsonl";
    public const string LoraFile = "lora.safetensors";
    public const string ConfigFile = "config.json";
    private const string StateFile = "state.json";
    private const string OptimizerFile = "optimizer.bin";
    private static readonly JsonSerializerOptions LineOptions = new() { WriteIndented = false };

    public string Path { get; } = dir;

    public string CheckpointDir => System.IO.Path.Combine(Path, "checkpoint");

    public string CheckpointLora => System.IO.Path.Combine(CheckpointDir, LoraFile);

    public bool HasCheckpoint
    {
        get
        {
            CheckpointFolder.Recover(CheckpointDir);
            return File.Exists(System.IO.Path.Combine(CheckpointDir, StateFile));
        }
    }

    /// <summary>Fails before any work when the folder can't be written; a new run refuses a folder that holds one.</summary>
    public void Prepare(bool resume, GrpoConfig config)
    {
        RunFolder.EnsureWritable(Path);
        if (new DriveInfo(System.IO.Path.GetFullPath(Path)).AvailableFreeSpace < 64L << 20)
        {
            throw new BadInputException(Path, "less than 64 MB free on the run folder's disk");
        }

        if (!resume && File.Exists(System.IO.Path.Combine(Path, MetricsFile)))
        {
            throw new BadInputException(Path, "run folder already holds a run; pass --resume to continue it or choose another --run-dir");
        }

        CheckpointFolder.WriteJson(System.IO.Path.Combine(Path, ConfigFile), config);
    }

    /// <summary>Reads the run state and loads the optimizer state saved with it.</summary>
    public GrpoRunState LoadCheckpoint(AdamW optimizer)
    {
        var state = ReadState();
        CheckpointFolder.LoadOptimizer(System.IO.Path.Combine(CheckpointDir, OptimizerFile), optimizer);
        return state;
    }

    /// <summary>
    /// The checkpoint's run state and, with <paramref name="withFiles"/>, the bytes of its LoRA and optimizer files (for
    /// ranks that don't have the run folder).
    /// </summary>
    public ResumePoint ReadCheckpoint(bool withFiles)
    {
        var state = ReadState();
        if (!withFiles)
        {
            return new ResumePoint(state, null, null);
        }

        string optimizer = System.IO.Path.Combine(CheckpointDir, OptimizerFile);
        return new ResumePoint(state, InputFile.ReadAllBytes(CheckpointLora), File.Exists(optimizer) ? InputFile.ReadAllBytes(optimizer) : []);
    }

    private GrpoRunState ReadState() => CheckpointFolder.ReadJson<GrpoRunState>(System.IO.Path.Combine(CheckpointDir, StateFile));

    public void SaveCheckpoint(LoraAdapters adapters, AdamW optimizer, GrpoRunState state)
    {
        ArgumentNullException.ThrowIfNull(adapters);
        CheckpointFolder.Write(CheckpointDir, tmp =>
        {
            adapters.Save(System.IO.Path.Combine(tmp, LoraFile));
            CheckpointFolder.SaveOptimizer(System.IO.Path.Combine(tmp, OptimizerFile), optimizer);
            CheckpointFolder.WriteJson(System.IO.Path.Combine(tmp, StateFile), state);
        });
        string latest = System.IO.Path.Combine(Path, LoraFile);
        File.Copy(CheckpointLora, latest + ".tmp", overwrite: true);
        File.Move(latest + ".tmp", latest, overwrite: true);
    }

    public void AppendMetrics(StepLog line) => Append(MetricsFile, line);

    public void AppendEval(EvalLog line) => Append(EvalFile, line);

    /// <summary>Drops step lines from <paramref name="step"/> on and evaluation lines after it: they are written again.</summary>
    public void DropLogsAfter(int step)
    {
        Truncate(MetricsFile, s => s < step);
        Truncate(EvalFile, s => s <= step);
    }

    /// <summary>The first group of a step: its input, then one row per candidate.</summary>
    public void WriteSampleGrid(int step, IReadOnlyList<(RgbaImage Input, IReadOnlyList<LayerStack> Candidates)> groups)
    {
        ArgumentNullException.ThrowIfNull(groups);
        if (groups.Count == 0)
        {
            return;
        }

        var (input, candidates) = groups[0];
        var rows = candidates.Select((c, i) => (i == 0 ? input : (RgbaImage?)null, c)).ToList();
        string grids = System.IO.Path.Combine(Path, "grids");
        Directory.CreateDirectory(grids);
        PngCodec.Write(System.IO.Path.Combine(grids, $"step_{step:D5}.png"), LayerGrid.Render(rows));
    }

    public void WriteEvalGrid(int step, RgbaImage grid)
    {
        string path = HeldoutEvaluation.GridPath(Path, step);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        PngCodec.Write(path, grid);
    }

    private void Append<T>(string file, T value) =>
        File.AppendAllText(System.IO.Path.Combine(Path, file), JsonSerializer.Serialize(value, LineOptions) + "\n");

    private void Truncate(string file, Func<int, bool> keep)
    {
        string path = System.IO.Path.Combine(Path, file);
        if (!File.Exists(path))
        {
            return;
        }

        var kept = File.ReadAllLines(path).Where(line =>
        {
            try
            {
                return keep(JsonDocument.Parse(line).RootElement.GetProperty("step").GetInt32());
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                return false;
            }
        }).ToList();
        AtomicFile.WriteAllText(path, kept.Count == 0 ? string.Empty : string.Join("\n", kept) + "\n");
    }
}

/// <summary>
/// Where a resumed run starts: the run state and, for ranks other than 0, the checkpoint's LoRA and AdamW bytes
/// (<see cref="Optimizer"/> empty: saved before the first step). Rank 0 loads from its run folder.
/// </summary>
public sealed record ResumePoint(GrpoRunState State, byte[]? Lora, byte[]? Optimizer)
{
    /// <summary>The checkpoint's adapters on <paramref name="model"/>, from <paramref name="folder"/> when given, else from <see cref="Lora"/>.</summary>
    public LoraAdapters LoadAdapters(TorchSharp.torch.nn.Module model, GrpoRunFolder? folder)
    {
        if (folder is not null)
        {
            return LoraAdapters.Load(model, folder.CheckpointLora);
        }

        // LoraAdapters reads files: the bytes go through a private temporary file, outside any run folder.
        string tmp = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"stable-layers-resume-{Environment.ProcessId}-{Guid.NewGuid():N}.safetensors");
        try
        {
            File.WriteAllBytes(tmp, Lora ?? throw new InvalidOperationException("no LoRA bytes to resume from"));
            return LoraAdapters.Load(model, tmp);
        }
        finally
        {
            File.Delete(tmp);
        }
    }

    /// <summary>Loads the AdamW state (from <paramref name="folder"/> when given, else the bytes) and returns the run state.</summary>
    public GrpoRunState LoadOptimizer(AdamW optimizer, GrpoRunFolder? folder)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        if (folder is not null)
        {
            return folder.LoadCheckpoint(optimizer);
        }

        if (Optimizer is { Length: > 0 } bytes)
        {
            using var reader = new BinaryReader(new MemoryStream(bytes));
            optimizer.load_state_dict(reader);
        }

        return State;
    }
}
