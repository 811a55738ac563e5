using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using StableLayers.Core;
using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges;
using StableLayers.Metrics;
using StableLayers.Metrics.Evaluation;

namespace StableLayers.Cli.Commands;

/// <summary>One judged prediction with its ground-truth metrics.</summary>
public sealed record AgreementPrediction
{
    /// <summary>The sample id, or "sample/variant" when a sample has several predictions.</summary>
    [JsonPropertyName("id")] public required string Id { get; init; }

    [JsonPropertyName("sample")] public required string Sample { get; init; }

    [JsonPropertyName("path")] public required string Path { get; init; }

    [JsonPropertyName("status")] public required string Status { get; init; }

    [JsonPropertyName("reward")] public double? Reward { get; init; }

    /// <summary>The scores compared with the metrics: calibrated when present, else phase 1.</summary>
    [JsonPropertyName("scores")] public CriterionScores? Scores { get; init; }

    [JsonPropertyName("error"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Error { get; init; }

    [JsonPropertyName("metrics")] public SampleMetrics? Metrics { get; init; }
}

public sealed record SkippedSample([property: JsonPropertyName("id")] string Id, [property: JsonPropertyName("reason")] string Reason);

public sealed record AgreementReport(
    [property: JsonPropertyName("judge")] string Judge,
    [property: JsonPropertyName("gt")] string Gt,
    [property: JsonPropertyName("pred")] string Pred,
    [property: JsonPropertyName("predictions")] IReadOnlyList<AgreementPrediction> Predictions,
    [property: JsonPropertyName("skipped")] IReadOnlyList<SkippedSample> Skipped,
    [property: JsonPropertyName("agreement")] IReadOnlyList<AgreementCell> Agreement,
    [property: JsonPropertyName("within_group"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<AgreementCell>? WithinGroup,
    [property: JsonPropertyName("usage")] JudgeUsage Usage,
    [property: JsonPropertyName("cost"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? Cost);

/// <summary>
/// <c>stable-layers judge-agreement --gt DIR --pred DIR [judge options] [--out FILE]</c>: judges predictions that have
/// ground truth and reports Spearman's rho of every criterion and the reward against the ground-truth metrics.
/// <c>pred/&lt;sample&gt;</c> is one prediction (a layered folder, or <c>&lt;sample&gt;.psd/.ora</c>), or a folder of several
/// (<c>pred/&lt;sample&gt;/&lt;variant&gt;/</c>), which are then judged as one group. The input image is the ground truth's composite.
/// </summary>
public static class JudgeAgreementCommand
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    public static Command Build()
    {
        var gt = new Option<DirectoryInfo>("--gt") { Description = "Ground-truth samples (layered folders or .psd/.ora), matched to predictions by name", Required = true };
        var pred = new Option<DirectoryInfo>("--pred") { Description = "Predictions: pred/<sample>/ (one) or pred/<sample>/<variant>/ (several, judged as one group)", Required = true };
        var output = new Option<FileInfo?>("--out") { Description = "Where the JSON report is written (atomically)" };
        var metrics = new Option<string?>("--metrics") { Description = "Comma-separated metrics.json names to correlate with (default: " + string.Join(",", JudgeAgreement.DefaultMetrics) + ")" };
        var judgeOptions = new JudgeCliOptions();
        var cmd = new Command("judge-agreement", "How well the judge ranks predictions the way ground-truth metrics do (Spearman's rho per criterion and metric)") { gt, pred, output, metrics };
        judgeOptions.AddTo(cmd);
        cmd.SetAction(async (parse, cancel) =>
        {
            StableLayersCli.ApplyGlobalOptions(parse);
            string gtDir = parse.GetRequiredValue(gt).FullName;
            string predDir = parse.GetRequiredValue(pred).FullName;
            var metricNames = ParseMetrics(parse.GetValue(metrics));
            var section = judgeOptions.Section(parse);
            if (!Directory.Exists(gtDir))
            {
                throw new BadInputException(gtDir, "ground-truth folder not found");
            }

            if (!Directory.Exists(predDir))
            {
                throw new BadInputException(predDir, "prediction folder not found");
            }

            var gtSamples = EvalRunner.Samples(gtDir);
            var predSamples = PredictionSamples(predDir);
            var err = parse.InvocationConfiguration.Error;
            var skipped = new List<SkippedSample>();
            foreach (var id in gtSamples.Keys.Except(predSamples.Keys).Order(StringComparer.Ordinal))
            {
                skipped.Add(new SkippedSample(id, $"{Path.Combine(predDir, id)}: no prediction for this ground-truth sample"));
            }

            foreach (var id in predSamples.Keys.Except(gtSamples.Keys).Order(StringComparer.Ordinal))
            {
                skipped.Add(new SkippedSample(id, $"{Path.Combine(gtDir, id)}: no ground truth for this prediction"));
            }

            var ids = predSamples.Keys.Intersect(gtSamples.Keys).Order(StringComparer.Ordinal).ToList();
            if (ids.Count == 0)
            {
                throw new BadInputException(predDir, $"no prediction has a ground-truth sample of the same name in {gtDir}");
            }

            var judge = judgeOptions.Create(parse, out _);
            var predictions = new List<AgreementPrediction>();
            var usage = JudgeUsage.None;
            try
            {
                foreach (var id in ids)
                {
                    var (rows, groupUsage) = await JudgeSampleAsync(judge, id, gtSamples[id], predSamples[id], skipped, cancel);
                    predictions.AddRange(rows);
                    usage = usage.Add(groupUsage);
                }
            }
            finally
            {
                (judge as IDisposable)?.Dispose();
            }

            // Several predictions of one sample were judged as one group: their within-group ranking is what GRPO uses.
            var grouped = predictions.GroupBy(p => p.Sample, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).ToHashSet(StringComparer.Ordinal);
            var judged = predictions.Where(p => p.Status == "scored")
                .Select(p => new JudgedSample(p.Id, p.Scores!, p.Reward!.Value, p.Metrics!, grouped.Contains(p.Sample) ? p.Sample : null)).ToList();
            var cells = JudgeAgreement.Compute(judged, metricNames);
            var withinGroup = grouped.Count > 0 ? JudgeAgreement.ComputeWithinGroups(judged, metricNames) : null;
            var report = new AgreementReport(judge.Name, gtDir, predDir, predictions, skipped, cells, withinGroup, usage, usage.Cost(section.PriceInPerMillion, section.PriceOutPerMillion));
            var outPath = parse.GetValue(output)?.FullName;
            if (outPath is not null)
            {
                AtomicFile.WriteAllText(outPath, JsonSerializer.Serialize(report, JsonOptions));
            }

            foreach (var s in skipped)
            {
                err.WriteLine($"skipped {s.Id}: {s.Reason}");
            }

            foreach (var p in predictions.Where(p => p.Status == "failed"))
            {
                err.WriteLine($"warning: judgement of {p.Id} failed: {p.Error}");
            }

            var stdout = parse.InvocationConfiguration.Output;
            stdout.WriteLine($"judge {judge.Name}: {judged.Count} of {predictions.Count} predictions judged ({ids.Count} samples, {skipped.Count} skipped)");
            stdout.Write(JudgeAgreement.Format(cells));
            if (withinGroup is not null)
            {
                stdout.WriteLine();
                stdout.Write(JudgeAgreement.Format(withinGroup, "mean within-group rho (groups)"));
            }

            if (outPath is not null)
            {
                stdout.WriteLine($"wrote {outPath}");
            }

            return judged.Count == 0 ? StableLayersCli.ExitError : StableLayersCli.ExitOk;
        });
        return cmd;
    }

    private static string[]? ParseMetrics(string? text)
    {
        if (text is null)
        {
            return null;
        }

        var names = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var known = new SampleMetrics { Id = "x" }.Scalars().Select(m => m.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var n in names)
        {
            if (!known.Contains(n))
            {
                throw new BadInputException("--metrics", $"unknown metric '{n}' (one of {string.Join(", ", known.Order(StringComparer.Ordinal))})");
            }
        }

        return names.Length == 0 ? throw new BadInputException("--metrics", "no metric names given") : names;
    }

    /// <summary>
    /// Predictions by sample id: a layered sub-folder or a .psd/.ora file is one prediction (its own name); a sub-folder
    /// holding layered folders or .psd/.ora files is several (variant = their names).
    /// </summary>
    public static Dictionary<string, List<(string Variant, string Path)>> PredictionSamples(string dir)
    {
        var result = new Dictionary<string, List<(string, string)>>(StringComparer.Ordinal);
        foreach (var (id, path) in EvalRunner.Samples(dir))
        {
            result[id] = [(id, path)];
        }

        foreach (var sub in Directory.GetDirectories(dir))
        {
            string id = Path.GetFileName(sub);
            if (id.StartsWith('_') || id.StartsWith('.') || result.ContainsKey(id))
            {
                continue;
            }

            var variants = EvalRunner.Samples(sub).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => ($"{id}/{kv.Key}", kv.Value)).ToList();
            if (variants.Count > 0)
            {
                result[id] = variants;
            }
        }

        return result;
    }

    private static async Task<(List<AgreementPrediction> Rows, JudgeUsage Usage)> JudgeSampleAsync(
        IJudge judge, string id, string gtPath, List<(string Variant, string Path)> preds, List<SkippedSample> skipped, CancellationToken cancel)
    {
        LayerStack gt;
        RgbaImage input;
        try
        {
            // Ground truth follows the evaluation convention: an opaque layer 0 (white added when missing).
            gt = LayeredFile.Read(gtPath, addWhiteBackground: true);
            input = (Directory.Exists(gtPath) ? LayeredFolder.ReadComposite(gtPath) : null) ?? gt.FlattenOnWhite();
            if (!input.SameSize(gt[0]))
            {
                throw new BadInputException(gtPath, $"composite is {input.Width}x{input.Height} but the layers are {gt.Width}x{gt.Height}");
            }
        }
        catch (BadInputException e)
        {
            skipped.Add(new SkippedSample(id, e.Message));
            return ([], JudgeUsage.None);
        }

        var ok = new List<(string Variant, string Path, LayerStack Stack, SampleMetrics Metrics)>();
        foreach (var (variant, path) in preds)
        {
            try
            {
                var stack = ScoreCommand.ReadCandidate(path, input);
                ok.Add((variant, path, stack, DecompositionEvaluator.Evaluate(variant, stack, gt, input)));
            }
            catch (BadInputException e)
            {
                skipped.Add(new SkippedSample(variant, e.Message));
            }
        }

        if (ok.Count == 0)
        {
            return ([], JudgeUsage.None);
        }

        var judgement = await judge.JudgeAsync(new JudgeGroup(id, input, ok.Select(o => o.Stack).ToList()), cancel);
        var rows = judgement.Candidates.Select(c =>
        {
            var (variant, path, _, metrics) = ok[c.Index];
            return new AgreementPrediction
            {
                Id = variant,
                Sample = id,
                Path = path,
                Status = c.Failed ? "failed" : "scored",
                Reward = c.Failed ? null : c.Reward,
                Scores = c.Failed ? null : c.Calibrated ?? c.Phase1,
                Error = c.Failed ? c.Error ?? "no score" : null,
                Metrics = metrics,
            };
        }).ToList();
        return (rows, judgement.Diagnostics.Usage);
    }
}
