using System.Text.Json.Serialization;

namespace StableLayers.Judges;

/// <summary>
/// One candidate's judgement. A failed judgement has <see cref="Error"/> set and no scores: it is
/// never scored as 0 (the trainer drops it from its group).
/// </summary>
public sealed record CandidateJudgement
{
    [JsonPropertyName("index")]
    public required int Index { get; init; }

    [JsonPropertyName("label")]
    public string Label => CandidateLabels.Label(Index);

    /// <summary>Phase 1: the absolute rubric, each criterion k/5.</summary>
    [JsonPropertyName("phase1")]
    public CriterionScores? Phase1 { get; init; }

    [JsonPropertyName("phase1_reward")]
    public double? Phase1Reward { get; init; }

    /// <summary>Phase 2: the within-group calibrated scores (null when calibration is off or failed).</summary>
    [JsonPropertyName("calibrated")]
    public CriterionScores? Calibrated { get; init; }

    [JsonPropertyName("calibrated_reward")]
    public double? CalibratedReward { get; init; }

    /// <summary>The reward used for advantages: calibrated when available, else phase 1.</summary>
    [JsonPropertyName("reward")]
    public double? Reward => CalibratedReward ?? Phase1Reward;

    [JsonPropertyName("error")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Error { get; init; }

    [JsonIgnore]
    public bool Failed => Error is not null || Reward is null;

    public static CandidateJudgement Scored(int index, CriterionScores phase1, CriterionScores? calibrated, RewardWeights weights) => new()
    {
        Index = index,
        Phase1 = phase1,
        Phase1Reward = weights.Reward(phase1),
        Calibrated = calibrated,
        CalibratedReward = calibrated is null ? null : weights.Reward(calibrated),
    };

    public static CandidateJudgement Failure(int index, string error) => new() { Index = index, Error = error };
}

/// <summary>Calls, cache hits, failures and tokens; summed over a group or a run. <see cref="Endpoints"/>: per endpoint of a judge pool (null with one endpoint).</summary>
public sealed record JudgeUsage(
    [property: JsonPropertyName("calls")] int Calls = 0,
    [property: JsonPropertyName("cache_hits")] int CacheHits = 0,
    [property: JsonPropertyName("failures")] int Failures = 0,
    [property: JsonPropertyName("retries")] int Retries = 0,
    [property: JsonPropertyName("tokens_in")] long TokensIn = 0,
    [property: JsonPropertyName("tokens_out")] long TokensOut = 0,
    [property: JsonPropertyName("endpoints"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<EndpointUsage>? Endpoints = null)
{
    public static JudgeUsage None { get; } = new();

    public JudgeUsage Add(JudgeUsage o) => new(
        Calls + o.Calls, CacheHits + o.CacheHits, Failures + o.Failures, Retries + o.Retries, TokensIn + o.TokensIn, TokensOut + o.TokensOut,
        EndpointUsage.Merge(Endpoints, o.Endpoints));

    /// <summary>Cost from per-million-token prices (null when no prices are configured).</summary>
    public double? Cost(double? pricePerMillionIn, double? pricePerMillionOut) =>
        pricePerMillionIn is null && pricePerMillionOut is null
            ? null
            : ((TokensIn * (pricePerMillionIn ?? 0)) + (TokensOut * (pricePerMillionOut ?? 0))) / 1e6;

    // Value equality over the endpoint list too (a record compares lists by reference).
    public bool Equals(JudgeUsage? other) =>
        other is not null && (Calls, CacheHits, Failures, Retries, TokensIn, TokensOut) == (other.Calls, other.CacheHits, other.Failures, other.Retries, other.TokensIn, other.TokensOut)
        && (Endpoints is null ? other.Endpoints is null : other.Endpoints is not null && Endpoints.SequenceEqual(other.Endpoints));

    public override int GetHashCode() => HashCode.Combine(Calls, CacheHits, Failures, Retries, TokensIn, TokensOut, Endpoints?.Count);
}

/// <summary>
/// One endpoint of a judge pool: attempts sent to it, those that failed against it (transport errors, timeouts,
/// 408/409/429/5xx, 401/403/404), summed latency, times it was taken out of rotation, and time spent out
/// (in a group's usage: the outages that ended during its requests; in a judge's totals: all, the current one included).
/// </summary>
public sealed record EndpointUsage(
    [property: JsonPropertyName("endpoint")] string Endpoint,
    [property: JsonPropertyName("requests")] int Requests = 0,
    [property: JsonPropertyName("failures")] int Failures = 0,
    [property: JsonPropertyName("latency_ms")] double LatencyMs = 0,
    [property: JsonPropertyName("taken_out")] int TakenOut = 0,
    [property: JsonPropertyName("out_ms")] double OutMs = 0)
{
    [JsonPropertyName("mean_latency_ms")]
    public double MeanLatencyMs => Requests == 0 ? 0 : LatencyMs / Requests;

    public EndpointUsage Add(EndpointUsage o) => this with
    {
        Requests = Requests + o.Requests,
        Failures = Failures + o.Failures,
        LatencyMs = LatencyMs + o.LatencyMs,
        TakenOut = TakenOut + o.TakenOut,
        OutMs = OutMs + o.OutMs,
    };

    /// <summary>Per-endpoint sums of two lists (matched by endpoint; order of first appearance); null when both are.</summary>
    public static IReadOnlyList<EndpointUsage>? Merge(IReadOnlyList<EndpointUsage>? a, IReadOnlyList<EndpointUsage>? b)
    {
        if (a is null || b is null)
        {
            return a ?? b;
        }

        var merged = a.ToList();
        foreach (var e in b)
        {
            int i = merged.FindIndex(x => x.Endpoint == e.Endpoint);
            if (i < 0)
            {
                merged.Add(e);
            }
            else
            {
                merged[i] = merged[i].Add(e);
            }
        }

        return merged;
    }
}

/// <summary>
/// What a group's judgement cost and how well it separated the candidates. <see cref="Failures"/>
/// counts failed candidates; <see cref="CalibrationError"/> says why phase 2 was skipped or failed
/// (the phase-1 scores are then used).
/// </summary>
public sealed record GroupDiagnostics(
    [property: JsonPropertyName("ties_before")] int TiesBefore,
    [property: JsonPropertyName("ties_after")] int TiesAfter,
    [property: JsonPropertyName("failures")] int Failures,
    [property: JsonPropertyName("latency_ms")] double LatencyMs,
    [property: JsonPropertyName("usage")] JudgeUsage Usage,
    [property: JsonPropertyName("calibration_error"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? CalibrationError = null);

public sealed record GroupJudgement(
    [property: JsonPropertyName("group")] string GroupId,
    [property: JsonPropertyName("judge")] string Judge,
    [property: JsonPropertyName("candidates")] IReadOnlyList<CandidateJudgement> Candidates,
    [property: JsonPropertyName("diagnostics")] GroupDiagnostics Diagnostics)
{
    /// <summary>Rewards in candidate order; null for failed candidates.</summary>
    public IReadOnlyList<double?> Rewards => Candidates.Select(c => c.Failed ? null : c.Reward).ToArray();
}

public static class GroupTies
{
    /// <summary>Unordered pairs of scored candidates whose rewards are equal (within 1e-9).</summary>
    public static int Count(IEnumerable<double?> rewards)
    {
        double[] r = rewards.Where(x => x is not null).Select(x => x!.Value).ToArray();
        int ties = 0;
        for (int i = 0; i < r.Length; i++)
        {
            for (int j = i + 1; j < r.Length; j++)
            {
                if (Math.Abs(r[i] - r[j]) <= 1e-9)
                {
                    ties++;
                }
            }
        }

        return ties;
    }
}
