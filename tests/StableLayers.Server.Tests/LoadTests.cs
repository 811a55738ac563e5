using System.Diagnostics;
using System.Net;
using SkiaSharp;
using StableLayers.Core.Imaging;
using StableLayers.Model.Inference;
using StableLayers.Model.Tests;
using Xunit.Abstractions;

namespace StableLayers.Server.Tests;

public class LoadTests(ITestOutputHelper output)
{
    [Fact]
    public async Task TwentyConcurrentUploadsAgainstAQueueOfTwoFinishOrGet429AndNoResultIsMixedUp()
    {
        const int uploads = 20;
        var tiny = TinyModel.Instance;
        await using var t = await TestServer.StartAsync(tiny.Engine, new ServerOptions { MaxRunning = 2, MaxQueued = 2 });
        var images = Enumerable.Range(0, uploads).Select(k => Images.Distinct(k)).ToArray();
        var files = images.Select(i => Images.Encode(i, SKEncodedImageFormat.Png)).ToArray();

        var clock = Stopwatch.StartNew();
        var (responses, peakIncrease, method) = HostMemory.MeasurePeakIncrease(() =>
        {
            // Every upload is a held request (?wait=1): it answers with the finished job or with 429 at once.
            var requests = Enumerable.Range(0, uploads)
                .Select(k => Task.Run(async () =>
                {
                    using var r = await t.UploadAsync(files[k], $"upload{k}.png", layers: "3", steps: "2", seed: k.ToString(System.Globalization.CultureInfo.InvariantCulture), wait: true);
                    return (k, r.StatusCode, Json: await TestServer.Json(r));
                }))
                .ToArray();
            return Task.WhenAll(requests).GetAwaiter().GetResult();
        });
        double seconds = clock.Elapsed.TotalSeconds;
        long peakRss = HostMemory.PeakBytes();

        var done = responses.Where(r => r.StatusCode == HttpStatusCode.OK).ToList();
        var refused = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        string summary = $"load: {uploads} concurrent uploads, queue of 2 (2 running): {done.Count} done, {refused.Count} answered 429, "
            + $"{seconds:F1} s; peak RSS {peakRss / 1048576.0:F0} MB, +{peakIncrease / 1048576.0:F0} MB over the run ({method})";
        output.WriteLine(summary);
        Console.WriteLine(summary);

        // Nothing lost: every upload is answered with its finished job or with 429 and a message.
        Assert.Equal(uploads, done.Count + refused.Count);
        Assert.All(refused, r => Assert.Contains("queue is full", r.Json.GetProperty("error").GetString()));
        Assert.True(done.Count >= 2, $"only {done.Count} finished");
        Assert.NotEmpty(refused);
        Assert.Equal(done.Count, done.Select(r => r.Json.GetProperty("id").GetString()).Distinct().Count());

        // Nothing mixed up: each finished job carries its own upload and seed, and its layers are that upload's
        // decomposition (and nobody else's).
        var expected = done.ToDictionary(
            r => r.k,
            r => new LayeredDecomposer(tiny.Model).Decompose(images[r.k], new DecomposeOptions { Layers = 3, Steps = 2, Seed = r.k }));
        foreach (var (k, _, job) in done)
        {
            Assert.Equal($"upload{k}", job.GetProperty("input").GetProperty("name").GetString());
            Assert.Equal(k, job.GetProperty("seed").GetInt64());
            var input = PngCodec.Decode(await t.Client.GetByteArrayAsync(job.GetProperty("input").GetProperty("url").GetString()), "input");
            Assert.Equal(0, Pixels.MaxAbs(images[k], input));
            var layers = job.GetProperty("result").GetProperty("layers").EnumerateArray().ToList();
            Assert.Equal(3, layers.Count);
            for (int i = 0; i < 3; i++)
            {
                var served = PngCodec.Decode(await t.Client.GetByteArrayAsync(layers[i].GetProperty("url").GetString()), "layer");
                Assert.True(Pixels.MaxAbs(expected[k][i], served) <= 1, $"upload {k} layer {i} is not its own decomposition");
                foreach (var other in expected.Where(e => e.Key != k && i == 0))
                {
                    Assert.True(Pixels.MaxAbs(other.Value[i], served) > 8, $"upload {k}'s background matches upload {other.Key}'s");
                }
            }
        }

        // Memory stays bounded: a few small jobs at a time, not twenty images' worth of everything.
        Assert.True(peakIncrease < 1536L * 1024 * 1024, summary);
        Assert.Equal(new(0, 0, 2, 2), t.Queue.Stats);
    }
}
