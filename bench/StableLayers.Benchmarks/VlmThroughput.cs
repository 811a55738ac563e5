using System.Diagnostics;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges;
using StableLayers.Judges.Tests;
using StableLayers.Judges.Vlm;

namespace StableLayers.Benchmarks;

/// <summary>
/// Phase-1 request throughput of <see cref="VlmJudge"/> against the in-process fake VLM answering
/// after a fixed delay: achieved requests/s vs the ideal concurrency / delay.
/// </summary>
public static class VlmThroughput
{
    public static async Task RunAsync(TimeSpan delay, int[] concurrencies)
    {
        await using var server = await FakeVlmServer.StartAsync();
        server.Record = false;
        server.ResponseDelay = delay;
        Console.WriteLine($"fake VLM at {server.BaseUrl}, fixed reply delay {delay.TotalMilliseconds:F0} ms; phase 1 only, no cache, 64x64 input, 2 layers");
        Console.WriteLine($"  {"concurrency",11} {"requests",8} {"seconds",8} {"achieved/s",10} {"ideal/s",8} {"efficiency",10} {"max in flight",13}");
        await Once(server, 2, 4); // warm-up: JIT, connections
        foreach (int c in concurrencies)
        {
            server.ResetCounters();
            int n = Math.Max(16, 4 * c);
            var (seconds, failed) = await Once(server, c, n);
            double achieved = n / seconds, ideal = c / delay.TotalSeconds;
            Console.WriteLine($"  {c,11} {n,8} {seconds,8:F2} {achieved,10:F1} {ideal,8:F1} {achieved / ideal,10:P0} {server.MaxInFlight,13}{(failed > 0 ? $"  ({failed} failed)" : "")}");
        }
    }

    private static async Task<(double Seconds, int Failed)> Once(FakeVlmServer server, int concurrency, int requests)
    {
        var input = RgbaImage.Filled(64, 64, 120, 160, 200, 255);
        var candidates = Enumerable.Range(0, requests)
            .Select(i => new LayerStack(RgbaImage.Filled(64, 64, (byte)i, 80, 90, 255), RgbaImage.Filled(64, 64, 10, (byte)(3 * i), 30, 128)))
            .ToArray();
        var options = new VlmJudgeOptions
        {
            Endpoint = server.BaseUrl,
            Model = "fake-vlm",
            MaxConcurrency = concurrency,
            Calibrate = false,
            Timeout = TimeSpan.FromSeconds(30),
            MaxRetries = 0,
        };
        using var judge = new VlmJudge(options);
        var sw = Stopwatch.StartNew();
        var result = await judge.JudgeAsync(new JudgeGroup("bench", input, candidates));
        return (sw.Elapsed.TotalSeconds, result.Diagnostics.Failures);
    }
}
