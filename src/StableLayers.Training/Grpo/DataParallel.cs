using System.Text.Json;
using System.Text.Json.Serialization;
using StableLayers.Distributed;
using StableLayers.Model;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Training.Grpo;

/// <summary>
/// The collectives of data-parallel GRPO, each a no-op on one process (so its path stays what it was): every rank
/// learns every rank's groups and judgements, the ranks' LoRA gradients are summed, stops are agreed, and checkpoints
/// check that the ranks still hold the same adapters. Every rank calls these in the same order (the communicator's rule).
/// </summary>
public static class DataParallel
{
    private static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>Every rank's <paramref name="local"/>, indexed by rank (JSON between processes: doubles round-trip exactly).</summary>
    public static IReadOnlyList<T> Gather<T>(ICommunicator communicator, T local)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        if (communicator.WorldSize == 1)
        {
            return [local];
        }

        return [.. communicator.AllGather(JsonSerializer.SerializeToUtf8Bytes(local, Json))
            .Select(bytes => JsonSerializer.Deserialize<T>(bytes, Json) ?? throw new InvalidOperationException("a rank sent nothing"))];
    }

    /// <summary>
    /// Sums the adapters' gradients over the ranks through one contiguous float32 buffer and writes the sum back. A SUM,
    /// not a mean: each rank's loss is already divided by the mini-batch's stored timesteps on all ranks, so the sum is
    /// the one-process gradient (up to float32 summation order). A rank without trained groups contributes zeros.
    /// </summary>
    public static void SumGradients(ICommunicator communicator, IReadOnlyList<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentNullException.ThrowIfNull(parameters);
        if (communicator.WorldSize == 1)
        {
            return;
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var p in parameters)
        {
            p.grad ??= zeros_like(p);
        }

        // NCCL reduces device tensors; MPI host buffers (a CUDA gradient is staged through the host).
        var device = parameters.Count == 0 ? CPU : parameters[0].device;
        var flat = cat([.. parameters.Select(p => p.grad!.flatten().to(ScalarType.Float32))])
            .to(communicator.Backend == DistributedBackend.Nccl ? device : CPU).contiguous();
        communicator.AllReduceSum(flat);
        long offset = 0;
        foreach (var p in parameters)
        {
            var g = p.grad!;
            g.copy_(flat.narrow(0, offset, g.numel()).view_as(g));
            offset += g.numel();
        }
    }

    /// <summary>Whether any rank asked to stop (Ctrl-C, SIGTERM): every rank gets the same answer at the same step.</summary>
    public static bool AgreeStop(ICommunicator communicator, bool requested)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        Span<double> flag = [requested ? 1 : 0];
        communicator.AllReduceMax(flag);
        return flag[0] > 0;
    }

    /// <summary>
    /// Null while every rank holds the same adapters (float64 sum and sum of squares of every LoRA value, compared by
    /// max and min over the ranks), else why not. Cheap (one pass over the adapters), so it runs at every checkpoint.
    /// </summary>
    public static string? Divergence(ICommunicator communicator, IReadOnlyList<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentNullException.ThrowIfNull(parameters);
        if (communicator.WorldSize == 1 || parameters.Count == 0)
        {
            return null;
        }

        double[] local;
        using (NewDisposeScope())
        {
            var flat = cat([.. parameters.Select(p => p.detach().flatten().to(ScalarType.Float64))]);
            local = HostReads.ToArray<double>(stack([flat.sum(), flat.square().sum()]));
        }

        // Non-finite adapters are the non-finite guard's business; max over NaN is not defined.
        Span<double> extremes = [.. local.Select(v => double.IsFinite(v) ? v : 0), .. local.Select(v => double.IsFinite(v) ? -v : 0)];
        communicator.AllReduceMax(extremes);
        return extremes[0] == -extremes[2] && extremes[1] == -extremes[3]
            ? null
            : $"the ranks' LoRA adapters differ (sum {-extremes[2]:R}..{extremes[0]:R}, sum of squares {-extremes[3]:R}..{extremes[1]:R}; this rank {local[0]:R}, {local[1]:R})";
    }
}

/// <summary>One rank's part of a step, gathered by every rank after judging.</summary>
public sealed record RankShare(
    [property: JsonPropertyName("skipped")] int Skipped,
    [property: JsonPropertyName("sampling_s")] double SamplingSeconds,
    [property: JsonPropertyName("judging_s")] double JudgingSeconds,
    [property: JsonPropertyName("groups")] IReadOnlyList<GroupShare> Groups);

/// <summary>
/// What every rank needs to know of one group: its image index in the step (its place among all ranks' groups), N,
/// the stored timesteps it trains, whether its latents were finite, its judgement, the bad layers of each candidate and
/// the update's FLOPs for it.
/// </summary>
public sealed record GroupShare(
    [property: JsonPropertyName("image")] int Image,
    [property: JsonPropertyName("layers")] int Layers,
    [property: JsonPropertyName("transitions")] int Transitions,
    [property: JsonPropertyName("nonfinite")] bool NonFinite,
    [property: JsonPropertyName("judgement")] Judges.GroupJudgement Judgement,
    [property: JsonPropertyName("bad_layers")] IReadOnlyList<int> BadLayers,
    [property: JsonPropertyName("flops")] double Flops);
