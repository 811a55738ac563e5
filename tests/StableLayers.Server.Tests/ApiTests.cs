using System.IO.Compression;
using System.Net;
using System.Text.Json;
using SkiaSharp;
using Microsoft.Extensions.Time.Testing;
using StableLayers.Core.Formats.OpenRaster;
using StableLayers.Core.Formats.Psd;
using StableLayers.Core.Imaging;
using StableLayers.Model.Inference;
using StableLayers.Server.Jobs;

namespace StableLayers.Server.Tests;

/// <summary>The HTTP API against a real Kestrel on a free loopback port, with the shipped tiny model.</summary>
public class ApiTests
{
    [Fact]
    public async Task AnUploadDecomposesWithTheModelItAskedForAndServesLayersScoresAndEveryDownload()
    {
        var tiny = TinyModel.Instance;
        await using var t = await TestServer.StartAsync(tiny.Engine);
        byte[] png = File.ReadAllBytes(Images.SamplePath);
        var input = PngCodec.Decode(png, "sample");

        using var response = await t.UploadAsync(png, "my design.png", layers: "3", steps: "3", seed: "7", wait: true);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var job = await TestServer.Json(response);
        string id = job.GetProperty("id").GetString()!;
        Assert.Equal($"/api/jobs/{id}", response.Headers.Location!.OriginalString);
        Assert.Equal("done", job.GetProperty("status").GetString());
        Assert.Equal(3, job.GetProperty("layers").GetInt32());
        Assert.Equal(7, job.GetProperty("seed").GetInt64());
        Assert.Equal("mydesign", job.GetProperty("input").GetProperty("name").GetString());
        Assert.Equal("png", job.GetProperty("input").GetProperty("format").GetString());
        var result = job.GetProperty("result");
        Assert.Equal(input.Width, result.GetProperty("width").GetInt32());
        Assert.Equal(input.Height, result.GetProperty("height").GetInt32());

        // The served layers are the model's own decomposition with the job's seed, steps and layer count.
        var expected = new LayeredDecomposer(tiny.Model).Decompose(input, new DecomposeOptions { Layers = 3, Steps = 3, Seed = 7 });
        var layers = result.GetProperty("layers").EnumerateArray().ToList();
        Assert.Equal(3, layers.Count);
        for (int k = 0; k < 3; k++)
        {
            var served = PngCodec.Decode(await t.Client.GetByteArrayAsync(layers[k].GetProperty("url").GetString()), "layer");
            Assert.True(Pixels.MaxAbs(expected[k], served) <= 1, $"layer {k} differs from the model's decomposition by {Pixels.MaxAbs(expected[k], served)}");
        }

        // The judge's five criteria, each in [0, 1], and a reward.
        var scores = result.GetProperty("scores");
        Assert.Equal(StableLayers.Judges.Rubric.RubricJudge.JudgeName, scores.GetProperty("judge").GetString());
        foreach (var key in scores.GetProperty("criteria").EnumerateArray().Select(k => k.GetString()!))
        {
            double v = scores.GetProperty("phase1").GetProperty(key).GetDouble();
            Assert.InRange(v, 0, 1);
        }

        Assert.Equal(5, scores.GetProperty("criteria").GetArrayLength());
        Assert.InRange(scores.GetProperty("reward").GetDouble(), 0, 1);

        // Downloads: PSD and ORA read back by our readers to the same layers, the zip unpacks to a layered folder.
        var downloads = result.GetProperty("downloads");
        using var psdResponse = await t.Client.GetAsync(downloads.GetProperty("psd").GetString());
        Assert.Equal("mydesign-layers.psd", psdResponse.Content.Headers.ContentDisposition!.FileName!.Trim('"'));
        var psd = PsdReader.Read(await psdResponse.Content.ReadAsByteArrayAsync(), "download.psd").ToLayerStack();
        var ora = OpenRasterReader.Read(new MemoryStream(await t.Client.GetByteArrayAsync(downloads.GetProperty("ora").GetString())), "download.ora").ToLayerStack();
        foreach (var stack in new[] { psd, ora })
        {
            Assert.Equal(3, stack.Count);
            for (int k = 0; k < 3; k++)
            {
                Assert.True(Pixels.MaxAbs(expected[k], stack[k]) <= 1);
            }
        }

        using var zip = new ZipArchive(new MemoryStream(await t.Client.GetByteArrayAsync(downloads.GetProperty("zip").GetString())));
        Assert.Equal(["composite.png", "input.png", "layer_00.png", "layer_01.png", "layer_02.png", "layers.json"], zip.Entries.Select(e => e.FullName).Order(StringComparer.Ordinal));
        Assert.Equal(input.Width, PngCodec.Decode(await t.Client.GetByteArrayAsync(job.GetProperty("input").GetProperty("url").GetString()), "input").Width);
    }

    [Fact]
    public async Task JpegAndWebPAreRecognisedByTheirBytesWhateverTheirNameAndOtherFilesAreRefused()
    {
        await using var t = await TestServer.StartAsync(TinyModel.Instance.Engine);
        var image = Images.Distinct(1);
        foreach (var (format, name) in new[] { (SKEncodedImageFormat.Jpeg, "jpeg"), (SKEncodedImageFormat.Webp, "webp"), (SKEncodedImageFormat.Png, "png") })
        {
            using var r = await t.UploadAsync(Images.Encode(image, format), "misnamed.txt", layers: "2", steps: "1", wait: true);
            var job = await TestServer.Json(r);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal(name, job.GetProperty("input").GetProperty("format").GetString());
            Assert.Equal(image.Width, job.GetProperty("result").GetProperty("width").GetInt32());
        }

        // Not an image, a GIF, and a PNG cut short: named .png, refused by content, each with a JSON error.
        // A valid 1x1 GIF (Skia decodes GIFs but does not encode them): a real image, just not one the server takes.
        byte[] gif = [.. "GIF89a"u8, 1, 0, 1, 0, 0x80, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, (byte)',', 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 1, 0, (byte)';'];
        Assert.NotNull(SKCodec.Create(new SKMemoryStream(gif)));
        byte[] png = Images.Encode(image, SKEncodedImageFormat.Png);
        foreach (var (bytes, status, text) in new[]
        {
            ("hello, not an image"u8.ToArray(), 415, "not a PNG, JPEG or WebP"),
            (gif, 415, "not a PNG, JPEG or WebP"),
            (png[..(png.Length / 2)], 400, "PNG image"),
            (Array.Empty<byte>(), 400, "empty"),
        })
        {
            using var r = await t.UploadAsync(bytes, "photo.png");
            Assert.Equal(status, (int)r.StatusCode);
            Assert.Contains(text, (await TestServer.Json(r)).GetProperty("error").GetString());
        }
    }

    [Fact]
    public async Task UploadsOverTheByteOrPixelLimitAre413BeforeAnyJobExists()
    {
        using var engine = new GatedEngine();
        await using var t = await TestServer.StartAsync(engine, new ServerOptions { MaxUploadBytes = 16 * 1024, MaxUploadPixels = 60 * 60 });
        var big = Images.Encode(new Func<RgbaImage>(() =>
        {
            var noise = new RgbaImage(80, 80);
            new Random(5).NextBytes(noise.Pixels);
            return noise;
        })(), SKEncodedImageFormat.Png);
        Assert.True(big.Length > 16 * 1024);
        using (var r = await t.UploadAsync(big))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.StatusCode);
            Assert.Contains("limit", (await TestServer.Json(r)).GetProperty("error").GetString());
        }

        // Small in bytes, large in pixels (a flat 61x61 image compresses to almost nothing).
        using (var r = await t.UploadAsync(Images.Encode(RgbaImage.Filled(61, 61, 9, 9, 9, 255), SKEncodedImageFormat.Png)))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.StatusCode);
            Assert.Contains("61x61", (await TestServer.Json(r)).GetProperty("error").GetString());
        }

        using (var ok = await t.UploadAsync(Images.Encode(RgbaImage.Filled(60, 60, 9, 9, 9, 255), SKEncodedImageFormat.Png)))
        {
            Assert.Equal(HttpStatusCode.Accepted, ok.StatusCode);
        }

        Assert.Single(t.Queue.All);
    }

    [Theory]
    [InlineData("0", "2", null, "layers must be 1..10")]
    [InlineData("11", "2", null, "layers must be 1..10")]
    [InlineData("three", "2", null, "layers must be 1..10")]
    [InlineData("3", "0", null, "steps must be 1..100")]
    [InlineData("3", "101", null, "steps must be 1..100")]
    [InlineData("3", "2", "x", "seed must be an integer")]
    public async Task BadFieldsAre400WithTheFieldNamed(string layers, string steps, string? seed, string message)
    {
        using var engine = new GatedEngine();
        await using var t = await TestServer.StartAsync(engine);
        using var r = await t.UploadAsync(Images.Encode(Images.Distinct(0), SKEncodedImageFormat.Png), layers: layers, steps: steps, seed: seed);
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Contains(message, (await TestServer.Json(r)).GetProperty("error").GetString());
        Assert.Empty(t.Queue.All);
    }

    [Fact]
    public async Task EveryErrorIsJsonWithAMessage()
    {
        using var engine = new GatedEngine();
        await using var t = await TestServer.StartAsync(engine);
        async Task Expect(HttpResponseMessage r, HttpStatusCode status, string text)
        {
            using (r)
            {
                Assert.Equal(status, r.StatusCode);
                Assert.Contains(text, (await TestServer.Json(r)).GetProperty("error").GetString());
            }
        }

        await Expect(await t.Client.GetAsync("/nothing/here"), HttpStatusCode.NotFound, "no such endpoint");
        await Expect(await t.Client.PutAsync("/api/jobs", new StringContent("x")), HttpStatusCode.MethodNotAllowed, "not allowed");
        await Expect(await t.Client.PostAsync("/api/jobs", new StringContent("{}")), HttpStatusCode.UnsupportedMediaType, "multipart/form-data");
        await Expect(await t.Client.PostAsync("/api/jobs", new MultipartFormDataContent { { new StringContent("3"), "layers" } }), HttpStatusCode.BadRequest, "no file in the form field 'image'");
        await Expect(await t.Client.GetAsync("/api/jobs/../../etc/passwd"), HttpStatusCode.NotFound, "no such");
        await Expect(await t.Client.GetAsync("/api/jobs/%2e%2e%2fetc%2fpasswd"), HttpStatusCode.NotFound, "no such job");
        await Expect(await t.Client.GetAsync("/api/jobs/" + new string('a', 32)), HttpStatusCode.NotFound, "no such job");
        await Expect(await t.Client.GetAsync("/api/jobs/" + new string('A', 32)), HttpStatusCode.NotFound, "no such job");

        using var up = await t.UploadAsync(Images.Encode(Images.Distinct(0), SKEncodedImageFormat.Png));
        string id = (await TestServer.Json(up)).GetProperty("id").GetString()!;
        await Expect(await t.Client.GetAsync($"/api/jobs/{id}/layers.psd"), HttpStatusCode.Conflict, "only once it is done");
        await Expect(await t.Client.GetAsync($"/api/jobs/{id}/layers/0.png"), HttpStatusCode.Conflict, "only once it is done");
        await Expect(await t.Client.GetAsync($"/api/jobs/{id}/secrets.txt"), HttpStatusCode.Conflict, "only once it is done");
        engine.ReleaseOne();
        await t.PollAsync(id, j => j.GetProperty("status").GetString() == "done");
        await Expect(await t.Client.GetAsync($"/api/jobs/{id}/layers/2.png"), HttpStatusCode.NotFound, "no such layer");
        await Expect(await t.Client.GetAsync($"/api/jobs/{id}/layers/-1.png"), HttpStatusCode.NotFound, "no such layer");
        await Expect(await t.Client.GetAsync($"/api/jobs/{id}/secrets.txt"), HttpStatusCode.NotFound, "no such download");
        await Expect(await t.Client.PostAsync($"/api/jobs/{id}/cancel", null), HttpStatusCode.Conflict, "already ended");
    }

    [Fact]
    public async Task JobIdsAre128RandomBitsAndNothingListsThem()
    {
        using var engine = new GatedEngine();
        await using var t = await TestServer.StartAsync(engine, new ServerOptions { MaxRunning = 1, MaxQueued = 40 });
        var ids = new List<string>();
        for (int i = 0; i < 40; i++)
        {
            using var r = await t.UploadAsync(Images.Encode(Images.Distinct(i, 8, 8), SKEncodedImageFormat.Png));
            ids.Add((await TestServer.Json(r)).GetProperty("id").GetString()!);
        }

        Assert.All(ids, id => Assert.Matches("^[0-9a-f]{32}$", id));
        Assert.Equal(ids.Count, ids.Distinct().Count());

        // Every hex digit position varies (a counter or timestamp in the id would leave most of them fixed).
        for (int pos = 0; pos < 32; pos++)
        {
            Assert.True(ids.Select(id => id[pos]).Distinct().Count() > 3, $"hex digit {pos} hardly varies");
        }

        using var list = await t.Client.GetAsync("/api/jobs");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, list.StatusCode);
        string info = await t.Client.GetStringAsync("/api/info");
        Assert.DoesNotContain(ids[0], info);
        Assert.Contains("\"queued\":39", info);
    }

    [Fact]
    public async Task AFullQueueAnswers429AndACancelledJobFreesItsPlace()
    {
        using var engine = new GatedEngine();
        await using var t = await TestServer.StartAsync(engine, new ServerOptions { MaxRunning = 1, MaxQueued = 1 });
        byte[] png = Images.Encode(Images.Distinct(0), SKEncodedImageFormat.Png);
        using var first = await t.UploadAsync(png);
        string running = (await TestServer.Json(first)).GetProperty("id").GetString()!;
        await t.PollAsync(running, j => j.GetProperty("status").GetString() == "running");
        using var second = await t.UploadAsync(png);
        var queued = await TestServer.Json(second);
        Assert.Equal("queued", queued.GetProperty("status").GetString());
        Assert.Equal(0, queued.GetProperty("queue_position").GetInt32());

        using (var full = await t.UploadAsync(png))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, full.StatusCode);
            Assert.Equal("5", full.Headers.GetValues("Retry-After").Single());
            Assert.Contains("queue is full (1 running, 1 waiting)", (await TestServer.Json(full)).GetProperty("error").GetString());
        }

        using (var cancel = await t.Client.PostAsync($"/api/jobs/{queued.GetProperty("id").GetString()}/cancel", null))
        {
            var job = await TestServer.Json(cancel);
            Assert.Equal("cancelled", job.GetProperty("status").GetString());
            Assert.Equal("cancelled by the user", job.GetProperty("error").GetString());
        }

        using (var fits = await t.UploadAsync(png))
        {
            Assert.Equal(HttpStatusCode.Accepted, fits.StatusCode);
        }

        // Cancelling the running job stops the engine through its token.
        using (var cancel = await t.Client.PostAsync($"/api/jobs/{running}/cancel", null))
        {
            Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        }

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (engine.Cancelled == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.Equal(1, engine.Cancelled);
        using var gone = await t.Client.DeleteAsync($"/api/jobs/{running}");
        Assert.Equal(HttpStatusCode.NoContent, gone.StatusCode);
        using var after = await t.Client.GetAsync($"/api/jobs/{running}");
        Assert.Equal(HttpStatusCode.NotFound, after.StatusCode);
    }

    [Fact]
    public async Task CancellingARealJobStopsTheModelMidSamplingAndFreesTheRunner()
    {
        await using var t = await TestServer.StartAsync(TinyModel.Instance.Engine, new ServerOptions { MaxRunning = 1, MaxSteps = 5000 });
        using var up = await t.UploadAsync(File.ReadAllBytes(Images.SamplePath), layers: "4", steps: "5000");
        string id = (await TestServer.Json(up)).GetProperty("id").GetString()!;
        var running = await t.PollAsync(id, j => j.GetProperty("progress").ValueKind == JsonValueKind.Object && j.GetProperty("progress").GetProperty("done").GetInt32() >= 2);
        Assert.Equal(5000, running.GetProperty("progress").GetProperty("total").GetInt32());
        using (await t.Client.PostAsync($"/api/jobs/{id}/cancel", null))
        {
        }

        // The runner is free again within a step: the next job completes.
        using var next = await t.UploadAsync(File.ReadAllBytes(Images.SamplePath), layers: "2", steps: "1", wait: true);
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        var cancelled = await t.GetJsonAsync($"/api/jobs/{id}");
        Assert.Equal("cancelled", cancelled.GetProperty("status").GetString());
        Assert.True(cancelled.GetProperty("progress").GetProperty("done").GetInt32() < 5000);
    }

    [Fact]
    public async Task AClientThatHangsUpOnAWaitingUploadCancelsItsJob()
    {
        using var engine = new GatedEngine();
        await using var t = await TestServer.StartAsync(engine);
        using var hangUp = new CancellationTokenSource();
        var request = t.UploadAsync(Images.Encode(Images.Distinct(0), SKEncodedImageFormat.Png), wait: true, cancellationToken: hangUp.Token);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (engine.Started == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        var job = Assert.Single(t.Queue.All);
        Assert.Equal(JobStatus.Running, job.Status);
        await hangUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(JobStatus.Cancelled, job.Status);
        Assert.Equal("cancelled: the client disconnected", job.Error);

        // The job is marked cancelled at once; the engine sees its token fire a moment later on its runner thread.
        deadline = DateTime.UtcNow.AddSeconds(10);
        while (engine.Cancelled == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.Equal(1, engine.Cancelled);
    }

    [Fact]
    public async Task APollingClientKeepsItsJobAliveAndOneThatStopsPollingLosesIt()
    {
        // A fake clock: the heartbeat watch runs when the test moves time on, so a slow machine cannot fail the test.
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var engine = new GatedEngine();
        await using var t = await TestServer.StartAsync(engine, new ServerOptions { MaxRunning = 2, HeartbeatTimeout = TimeSpan.FromSeconds(10) }, clock);
        byte[] png = Images.Encode(Images.Distinct(0), SKEncodedImageFormat.Png);
        using var a = await t.UploadAsync(png);
        using var b = await t.UploadAsync(png);
        string polled = (await TestServer.Json(a)).GetProperty("id").GetString()!;
        string abandoned = (await TestServer.Json(b)).GetProperty("id").GetString()!;
        await t.PollAsync(polled, j => j.GetProperty("status").GetString() == "running");
        for (int i = 0; i < 5; i++)
        {
            // 15 s in all, a status request every 3 s.
            clock.Advance(TimeSpan.FromSeconds(3));
            Assert.Equal("running", (await t.GetJsonAsync($"/api/jobs/{polled}")).GetProperty("status").GetString());
        }

        var lost = await t.GetJsonAsync($"/api/jobs/{abandoned}");
        Assert.Equal("cancelled", lost.GetProperty("status").GetString());
        Assert.Contains("no status request for 10 s", lost.GetProperty("error").GetString());
        // Two permits: the abandoned job's runner may still be waiting on the gate when its cancellation lands, and
        // must not be able to take the polled job's only permit.
        engine.ReleaseOne();
        engine.ReleaseOne();
        var done = await t.PollAsync(polled, j => j.GetProperty("status").GetString() != "running");
        Assert.Equal("done", done.GetProperty("status").GetString());
    }

    [Fact]
    public async Task OnlyLoopbackHostNamesAndSameOriginPostsAreServed()
    {
        using var engine = new GatedEngine();
        await using var t = await TestServer.StartAsync(engine);
        using (var rebound = new HttpRequestMessage(HttpMethod.Get, "/api/info"))
        {
            rebound.Headers.Host = "evil.example";
            using var r = await t.Client.SendAsync(rebound);
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Contains("only requests to localhost", (await TestServer.Json(r)).GetProperty("error").GetString());
        }

        using (var crossSite = new HttpRequestMessage(HttpMethod.Post, "/api/jobs") { Content = TestServer.Form(Images.Encode(Images.Distinct(0), SKEncodedImageFormat.Png)) })
        {
            crossSite.Headers.Add("Origin", "https://evil.example");
            using var r = await t.Client.SendAsync(crossSite);
            Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);
            Assert.Contains("cross-origin", (await TestServer.Json(r)).GetProperty("error").GetString());
        }

        using (var sameSite = new HttpRequestMessage(HttpMethod.Post, "/api/jobs") { Content = TestServer.Form(Images.Encode(Images.Distinct(0), SKEncodedImageFormat.Png)) })
        {
            sameSite.Headers.Add("Origin", t.Server.BaseAddress.GetLeftPart(UriPartial.Authority));
            using var r = await t.Client.SendAsync(sameSite);
            Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        }

        Assert.Single(t.Queue.All);
    }

    [Fact]
    public async Task ThePageIsServedFromTheAssemblyAndLoadsNothingFromElsewhere()
    {
        using var engine = new GatedEngine();
        await using var t = await TestServer.StartAsync(engine);
        foreach (var (path, type) in new[] { ("/", "text/html"), ("/app.js", "text/javascript"), ("/app.css", "text/css") })
        {
            using var r = await t.Client.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal(type, r.Content.Headers.ContentType!.MediaType);
            Assert.Contains("default-src 'none'", r.Headers.GetValues("Content-Security-Policy").Single());
            string text = await r.Content.ReadAsStringAsync();
            Assert.DoesNotMatch("(?i)(https?:)?//[a-z0-9.-]+\\.[a-z]{2,}/", text);
        }

        using var traversal = await t.Client.GetAsync("/app.js/../../StableLayers.Server.dll");
        Assert.Equal(HttpStatusCode.NotFound, traversal.StatusCode);
    }

    [Fact]
    public async Task AutoChoosesTheLayerCountWithTheSelectorByJudgeOrByCount()
    {
        await using var t = await TestServer.StartAsync(TinyModel.Instance.Engine);
        byte[] png = File.ReadAllBytes(Images.SamplePath);
        using var r = await t.UploadAsync(png, layers: "auto", steps: "1", wait: true);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var job = await TestServer.Json(r);
        Assert.Equal("auto", job.GetProperty("layers").GetString());
        var result = job.GetProperty("result");
        var auto = result.GetProperty("auto");
        Assert.Equal("judge", auto.GetProperty("method").GetString());
        var candidates = auto.GetProperty("candidates").EnumerateArray().ToList();
        Assert.Equal(Enumerable.Range(2, 7), candidates.Select(c => c.GetProperty("layers").GetInt32()));
        int chosen = auto.GetProperty("chosen").GetInt32();
        double best = candidates.Max(c => c.GetProperty("reward").GetDouble());
        Assert.Equal(candidates.First(c => c.GetProperty("reward").GetDouble() == best).GetProperty("layers").GetInt32(), chosen);
        Assert.Equal(chosen, result.GetProperty("layers").GetArrayLength());
        Assert.Equal(best, result.GetProperty("scores").GetProperty("reward").GetDouble());

        // Count: one decomposition at the maximum of the range, then (unless that count is kept) one at the count found.
        using var c = await t.UploadAsync(png, layers: "auto", steps: "1", wait: true, extra: new() { ["auto_method"] = "count", ["min_layers"] = "2", ["max_layers"] = "10" });
        Assert.Equal(HttpStatusCode.OK, c.StatusCode);
        var counted = (await TestServer.Json(c)).GetProperty("result");
        var byCount = counted.GetProperty("auto");
        Assert.Equal("count", byCount.GetProperty("method").GetString());
        var first = byCount.GetProperty("candidates")[0];
        Assert.Equal(10, first.GetProperty("layers").GetInt32());
        int found = Math.Clamp(first.GetProperty("distinct_layers").GetInt32(), 2, 10);
        Assert.Equal(found, byCount.GetProperty("chosen").GetInt32());
        Assert.Equal(found, counted.GetProperty("layers").GetArrayLength());
        Assert.Equal(JsonValueKind.Number, counted.GetProperty("scores").GetProperty("reward").ValueKind);

        foreach (var (fields, message) in new (Dictionary<string, string>, string)[]
        {
            (new() { ["auto_method"] = "guess" }, "auto_method must be judge or count"),
            (new() { ["max_layers"] = "11" }, "max_layers must be 2..10"),
            (new() { ["min_layers"] = "6", ["max_layers"] = "4" }, "min_layers 6 is above max_layers 4"),
        })
        {
            using var bad = await t.UploadAsync(png, layers: "auto", extra: fields);
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Contains(message, (await TestServer.Json(bad)).GetProperty("error").GetString());
        }

        using var notAuto = await t.UploadAsync(png, layers: "3", extra: new() { ["min_layers"] = "2" });
        Assert.Contains("min_layers is only used with layers=auto", (await TestServer.Json(notAuto)).GetProperty("error").GetString());
    }

    [Fact]
    public async Task OnlyTheNewestFinishedJobsAreKept()
    {
        using var engine = new GatedEngine();
        await using var t = await TestServer.StartAsync(engine, new ServerOptions { KeepFinished = 2 });
        var ids = new List<string>();
        for (int i = 0; i < 3; i++)
        {
            using var up = await t.UploadAsync(Images.Encode(Images.Distinct(i), SKEncodedImageFormat.Png));
            ids.Add((await TestServer.Json(up)).GetProperty("id").GetString()!);
            engine.ReleaseOne();
            await t.PollAsync(ids[^1], j => j.GetProperty("status").GetString() == "done");
        }

        using var first = await t.Client.GetAsync($"/api/jobs/{ids[0]}");
        Assert.Equal(HttpStatusCode.NotFound, first.StatusCode);
        Assert.Equal("done", (await t.GetJsonAsync($"/api/jobs/{ids[2]}")).GetProperty("status").GetString());
        Assert.Equal(2, t.Queue.All.Count);
    }
}
