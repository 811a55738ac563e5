using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using StableLayers.Core;
using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges;

namespace StableLayers.Cli.Commands;

/// <summary>One candidate in scores.json: where it came from, its two phases of scores and its reward.</summary>
public sealed record ScoredCandidate
{
    [JsonPropertyName("label")] public required string Label { get; init; }

    [JsonPropertyName("path")] public required string Path { get; init; }

    [JsonPropertyName("layers")] public int Layers { get; init; }

    /// <summary>"scored" or "failed" (a failed judgement has no scores, never 0).</summary>
    [JsonPropertyName("status")] public required string Status { get; init; }

    /// <summary>1 = highest reward among the scored candidates; null when failed.</summary>
    [JsonPropertyName("rank")] public int? Rank { get; init; }

    [JsonPropertyName("reward")] public double? Reward { get; init; }

    [JsonPropertyName("phase1_reward")] public double? Phase1Reward { get; init; }

    [JsonPropertyName("calibrated_reward")] public double? CalibratedReward { get; init; }

    [JsonPropertyName("phase1")] public CriterionScores? Phase1 { get; init; }

    [JsonPropertyName("calibrated")] public CriterionScores? Calibrated { get; init; }

    [JsonPropertyName("error"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Error { get; init; }
}

/// <summary>scores.json, written by <c>stable-layers score</c>.</summary>
public sealed record ScoreReport(
    [property: JsonPropertyName("input")] string Input,
    [property: JsonPropertyName("judge")] string Judge,
    [property: JsonPropertyName("calibrate")] bool Calibrate,
    [property: JsonPropertyName("candidates")] IReadOnlyList<ScoredCandidate> Candidates,
    [property: JsonPropertyName("diagnostics")] GroupDiagnostics Diagnostics,
    [property: JsonPropertyName("cost"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? Cost)
{
    public static ScoreReport Build(string input, IReadOnlyList<(string Path, LayerStack Stack)> candidates, GroupJudgement judgement, bool calibrate, double? cost)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(judgement);
        var ranks = Ranks(judgement.Rewards);
        var rows = judgement.Candidates.Select(c => new ScoredCandidate
        {
            Label = c.Label,
            Path = candidates[c.Index].Path,
            Layers = candidates[c.Index].Stack.Count,
            Status = c.Failed ? "failed" : "scored",
            Rank = ranks[c.Index],
            Reward = c.Failed ? null : c.Reward,
            Phase1Reward = c.Phase1Reward,
            CalibratedReward = c.CalibratedReward,
            Phase1 = c.Phase1,
            Calibrated = c.Calibrated,
            Error = c.Failed ? c.Error ?? "no score" : null,
        }).ToList();
        return new ScoreReport(input, judgement.Judge, calibrate, rows, judgement.Diagnostics, cost);
    }

    /// <summary>Competition ranks (1 = best; equal rewards share a rank); null for failed candidates.</summary>
    public static int?[] Ranks(IReadOnlyList<double?> rewards)
    {
        ArgumentNullException.ThrowIfNull(rewards);
        return rewards.Select(r => r is double v ? 1 + rewards.Count(o => o is double w && w > v + 1e-9) : (int?)null).ToArray();
    }
}

/// <summary>
/// <c>stable-layers score INPUT_IMAGE CANDIDATE... --out scores.json [judge options]</c>: judges candidate decompositions
/// of one image as one group (phase 1 + phase 2) and writes their scores. Exit code 0 when at least one candidate was
/// scored (failed ones are marked "failed" in scores.json and on stderr), 1 when every judgement failed, 2 on bad input.
/// </summary>
public static class ScoreCommand
{
    public static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    public static Command Build()
    {
        var input = new Argument<string>("input") { Description = "The input image the candidates decompose (PNG, JPEG, WebP)" };
        var candidates = new Argument<string[]>("candidates") { Description = "Candidate decompositions of the input: layered folders (or .psd/.ora files), judged as one group", Arity = ArgumentArity.OneOrMore };
        var output = new Option<FileInfo>("--out") { Description = "Where scores.json is written (atomically)", Required = true };
        var judgeOptions = new JudgeCliOptions();
        var cmd = new Command("score", "Score candidate decompositions of one image with the judge (phase 1 rubric, phase 2 calibration)") { input, candidates, output };
        judgeOptions.AddTo(cmd);
        cmd.SetAction(async (parse, cancel) =>
        {
            StableLayersCli.ApplyGlobalOptions(parse);
            string inputPath = parse.GetRequiredValue(input);
            string outPath = parse.GetRequiredValue(output).FullName;
            var section = judgeOptions.Section(parse);
            var image = PngCodec.Read(inputPath);
            var stacks = parse.GetRequiredValue(candidates).Select(p => (p, ReadCandidate(p, image))).ToList();

            var judge = judgeOptions.Create(parse, out _);
            GroupJudgement judgement;
            try
            {
                judgement = await judge.JudgeAsync(new JudgeGroup(Path.GetFileName(inputPath), image, stacks.Select(s => s.Item2).ToList()), cancel);
            }
            finally
            {
                (judge as IDisposable)?.Dispose();
            }

            double? cost = judgement.Diagnostics.Usage.Cost(section.PriceInPerMillion, section.PriceOutPerMillion);
            var report = ScoreReport.Build(inputPath, stacks, judgement, section.Calibrate, cost);
            AtomicFile.WriteAllText(outPath, JsonSerializer.Serialize(report, JsonOptions));

            var stdout = parse.InvocationConfiguration.Output;
            stdout.Write(Table(report));
            stdout.WriteLine($"wrote {outPath}");
            foreach (var c in report.Candidates.Where(c => c.Status == "failed"))
            {
                parse.InvocationConfiguration.Error.WriteLine($"warning: candidate {c.Label} ({c.Path}) failed: {c.Error}");
            }

            return report.Candidates.All(c => c.Status == "failed") ? StableLayersCli.ExitError : StableLayersCli.ExitOk;
        });
        return cmd;
    }

    /// <summary>Reads one candidate; a missing/corrupt file or a size other than the input's is a <see cref="BadInputException"/> naming it.</summary>
    public static LayerStack ReadCandidate(string path, RgbaImage input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var stack = LayeredFile.Read(path);
        if (stack.Width != input.Width || stack.Height != input.Height)
        {
            throw new BadInputException(path, $"candidate is {stack.Width}x{stack.Height} but the input image is {input.Width}x{input.Height}");
        }

        return stack;
    }

    /// <summary>A short text table: one row per candidate, the scores used for the reward (calibrated when present).</summary>
    public static string Table(ScoreReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var d = report.Diagnostics;
        var sw = new StringWriter(CultureInfo.InvariantCulture);
        sw.WriteLine($"judge {report.Judge}: {report.Candidates.Count} candidates, {d.Failures} failed, ties {d.TiesBefore} -> {d.TiesAfter}, {d.LatencyMs / 1000:F1} s, {d.Usage.Calls} calls ({d.Usage.CacheHits} cached), {d.Usage.TokensIn}+{d.Usage.TokensOut} tokens{(report.Cost is double cost ? $", cost {cost:F4}" : "")}");
        if (d.CalibrationError is not null)
        {
            sw.WriteLine($"calibration: {d.CalibrationError}");
        }

        foreach (var e in d.Usage.Endpoints ?? [])
        {
            sw.WriteLine($"endpoint {e.Endpoint}: {e.Requests} requests, {e.Failures} failed, mean {e.MeanLatencyMs:F0} ms, taken out {e.TakenOut}x");
        }

        sw.WriteLine($"{"",-4}{"rank",5}{"reward",8}{"phase1",8}{"sep",7}{"alpha",7}{"bg",7}{"dist",7}{"valid",7}  candidate");
        foreach (var c in report.Candidates)
        {
            var s = c.Calibrated ?? c.Phase1;
            string scores = c.Status == "failed" || s is null
                ? $"{"FAILED",-49}"
                : string.Create(CultureInfo.InvariantCulture, $"{c.Rank,5}{c.Reward,8:F4}{c.Phase1Reward,8:F4}{s.SemanticSeparation,7:F3}{s.AlphaCleanliness,7:F3}{s.BackgroundInpainting,7:F3}{s.FeatureDistribution,7:F3}{s.ContentValidity,7:F3}");
            sw.WriteLine($"{c.Label,-4}{scores}  {c.Path}");
        }

        return sw.ToString();
    }
}
