using System.Net.Http.Headers;
using System.Text.Json;
using SkiaSharp;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges;
using StableLayers.Judges.Rubric;
using StableLayers.Model;
using StableLayers.Server.Jobs;
using StableLayers.TestSupport;

namespace StableLayers.Server.Tests;

/// <summary>The shipped tiny model, loaded once for every test of the assembly that decomposes for real.</summary>
public sealed class TinyModel : IDisposable
{
    private static readonly Lazy<TinyModel> Shared = new(() => new TinyModel());

    private TinyModel()
    {
        // One intra-op thread: the runners supply the parallelism, and on a loaded 2-core machine libtorch's spinning
        // worker threads made a 4-step decomposition take 20 s instead of 0.7 s.
        TorchSharp.torch.set_num_threads(1);
        Model = LayeredModel.Load(Path.Combine(TestData.RepoRoot, "models", "tiny-base"));
        Engine = new ModelEngine(Model, new RubricJudge(), "tiny-base");
    }

    public static TinyModel Instance => Shared.Value;

    public LayeredModel Model { get; }

    public ModelEngine Engine { get; }

    public void Dispose() => Model.Dispose();
}

/// <summary>
/// A fake engine for the queue's behaviour (429, cancel, heartbeat, disconnect): each job runs until the test
/// releases it, reporting one step and honouring cancellation; its "layers" are the input and a blank layer.
/// </summary>
public sealed class GatedEngine : IDecomposeEngine, IDisposable
{
    private readonly SemaphoreSlim release = new(0);
    private int started;
    private int cancelled;

    public string ModelName => "gated";

    public string JudgeName => "none";

    public int Started => Volatile.Read(ref started);

    public int Cancelled => Volatile.Read(ref cancelled);

    public void ReleaseOne() => release.Release();

    public JobOutcome Run(RgbaImage input, JobSettings settings, Action<JobProgress> progress, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref started);
        progress(new JobProgress("sampling", 1, 2));
        try
        {
            release.Wait(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            Interlocked.Increment(ref cancelled);
            throw;
        }

        var stack = new LayerStack(input.Clone(), new RgbaImage(input.Width, input.Height));
        return new JobOutcome(stack, new JobScores("none", null, null, null, "not judged"), null);
    }

    public void Dispose() => release.Dispose();
}

/// <summary>A server on 127.0.0.1 with a free port and an HttpClient pointed at it.</summary>
public sealed class TestServer : IAsyncDisposable
{
    private TestServer(StableLayersServer server)
    {
        Server = server;
        Client = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public StableLayersServer Server { get; }

    public HttpClient Client { get; }

    public JobQueue Queue => Server.Queue;

    public static async Task<TestServer> StartAsync(IDecomposeEngine engine, ServerOptions? options = null, TimeProvider? time = null) =>
        new(await StableLayersServer.StartAsync((options ?? new ServerOptions()) with { Host = "127.0.0.1", Port = 0 }, engine, time));

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }

    /// <summary>POST /api/jobs with the file in "image" and the given form fields.</summary>
    public Task<HttpResponseMessage> UploadAsync(byte[] file, string fileName = "upload.png", string? layers = "3", string? steps = "2", string? seed = null, bool wait = false, Dictionary<string, string>? extra = null, CancellationToken cancellationToken = default) =>
        Client.PostAsync(wait ? "/api/jobs?wait=1" : "/api/jobs", Form(file, fileName, layers, steps, seed, extra), cancellationToken);

    public static MultipartFormDataContent Form(byte[] file, string fileName = "upload.png", string? layers = "3", string? steps = "2", string? seed = null, Dictionary<string, string>? extra = null)
    {
        var form = new MultipartFormDataContent();
        var content = new ByteArrayContent(file);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        form.Add(content, "image", fileName);
        if (layers is not null)
        {
            form.Add(new StringContent(layers), "layers");
        }

        if (steps is not null)
        {
            form.Add(new StringContent(steps), "steps");
        }

        if (seed is not null)
        {
            form.Add(new StringContent(seed), "seed");
        }

        foreach (var (name, value) in extra ?? new Dictionary<string, string>())
        {
            form.Add(new StringContent(value), name);
        }

        return form;
    }

    public async Task<JsonElement> GetJsonAsync(string path)
    {
        using var response = await Client.GetAsync(path);
        return await Json(response);
    }

    public static async Task<JsonElement> Json(HttpResponseMessage response)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    /// <summary>Polls GET /api/jobs/{id} until <paramref name="until"/> holds (or 20 s pass).</summary>
    public async Task<JsonElement> PollAsync(string id, Func<JsonElement, bool> until)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var job = await GetJsonAsync($"/api/jobs/{id}");
            if (until(job) || DateTime.UtcNow > deadline)
            {
                return job;
            }

            await Task.Delay(20);
        }
    }
}

public static class Images
{
    /// <summary>The composite of a real layered sample in the repository (a design the tiny model reconstructs roughly).</summary>
    public static string SamplePath => Path.Combine(TestData.RealPsdDev, "groups", "composite.png");

    public static byte[] Encode(RgbaImage image, SKEncodedImageFormat format, int quality = 100)
    {
        var info = new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        System.Runtime.InteropServices.Marshal.Copy(image.Pixels, 0, bitmap.GetPixels(), image.Pixels.Length);
        using var data = bitmap.Encode(format, quality);
        return data.ToArray();
    }

    /// <summary>An opaque image: a colour field with a rectangle of another colour, distinct per <paramref name="k"/>.</summary>
    public static RgbaImage Distinct(int k, int width = 48, int height = 40)
    {
        var rnd = new Random(1000 + k);
        var img = RgbaImage.Filled(width, height, (byte)rnd.Next(256), (byte)rnd.Next(256), (byte)rnd.Next(256), 255);
        int x0 = rnd.Next(width / 2), y0 = rnd.Next(height / 2);
        var (r, g, b) = ((byte)rnd.Next(256), (byte)rnd.Next(256), (byte)rnd.Next(256));
        for (int y = y0; y < y0 + (height / 2); y++)
        {
            for (int x = x0; x < x0 + (width / 2); x++)
            {
                int i = ((y * width) + x) * 4;
                img.Pixels[i] = r;
                img.Pixels[i + 1] = g;
                img.Pixels[i + 2] = b;
            }
        }

        return img;
    }
}

public static class Pixels
{
    /// <summary>Largest byte difference of two same-size images; colour counts only where either is visible (alpha > 0), as layered files may clear fully transparent pixels.</summary>
    public static int MaxAbs(RgbaImage a, RgbaImage b)
    {
        Assert.True(a.SameSize(b), $"sizes differ: {a.Width}x{a.Height} vs {b.Width}x{b.Height}");
        int max = 0;
        for (int i = 0; i < a.Pixels.Length; i += 4)
        {
            bool visible = a.Pixels[i + 3] > 0 || b.Pixels[i + 3] > 0;
            for (int c = visible ? 0 : 3; c < 4; c++)
            {
                max = Math.Max(max, Math.Abs(a.Pixels[i + c] - b.Pixels[i + c]));
            }
        }

        return max;
    }
}
