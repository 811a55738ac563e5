using TorchSharp;

namespace StableLayers.Distributed;

/// <summary>World size 1: every collective is the identity.</summary>
public sealed class SingleProcess : ICommunicator
{
    public static SingleProcess Instance { get; } = new();

    public int Rank => 0;

    public int WorldSize => 1;

    public DistributedBackend Backend => DistributedBackend.None;

    public void AllReduceSum(torch.Tensor tensor) => ArgumentNullException.ThrowIfNull(tensor);

    public void AllReduceSum(Span<double> values)
    {
    }

    public void AllReduceMax(Span<double> values)
    {
    }

    public byte[] Broadcast(byte[]? data, int root = 0) =>
        root == 0 ? data ?? throw new ArgumentNullException(nameof(data)) : throw new ArgumentOutOfRangeException(nameof(root), root, "a single process has only rank 0");

    public IReadOnlyList<byte[]> AllGather(ReadOnlySpan<byte> local) => [local.ToArray()];

    public void Barrier()
    {
    }

    public void Abort(int exitCode, string message)
    {
        Console.Error.WriteLine(message);
        Environment.Exit(exitCode);
    }

    public void Dispose()
    {
    }
}
