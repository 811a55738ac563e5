using PuppeteerSharp;
using StableLayers.Core.Formats.Psd;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.TestSupport;
using Xunit.Abstractions;

namespace StableLayers.Server.Tests;

/// <summary>
/// The page in a real headless Chromium (Debian's package, /usr/bin/chromium, installed by .ci/run; PuppeteerSharp never
/// downloads one): upload, wait for the layers, hide one and check the live recomposite, download the PSD and read it.
/// </summary>
public class BrowserTests(ITestOutputHelper output)
{
    public const string ChromiumPath = "/usr/bin/chromium";

    [Fact]
    public async Task UploadWaitToggleALayerAndDownloadThePsd()
    {
        Assert.True(File.Exists(ChromiumPath), $"{ChromiumPath} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does)");
        await using var t = await TestServer.StartAsync(TinyModel.Instance.Engine);
        using var downloads = new TempDir();
        string baseUrl = t.Server.BaseAddress.ToString();

        await using var browser = await Puppeteer.LaunchAsync(new LaunchOptions
        {
            Headless = true,
            ExecutablePath = ChromiumPath,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"],
            Timeout = 60_000,
        });
        await using var page = await browser.NewPageAsync();
        await page.SetViewportAsync(new ViewPortOptions { Width = 1280, Height = 1000 });
        var elsewhere = new List<string>();
        var consoleErrors = new List<string>();
        page.Request += (_, e) =>
        {
            if (!e.Request.Url.StartsWith(baseUrl, StringComparison.Ordinal) && !e.Request.Url.StartsWith("blob:", StringComparison.Ordinal))
            {
                elsewhere.Add(e.Request.Url);
            }
        };
        page.Console += (_, e) =>
        {
            if (e.Message.Type == ConsoleType.Error)
            {
                consoleErrors.Add(e.Message.Text);
            }
        };
        await page.Client.SendAsync("Browser.setDownloadBehavior", new { behavior = "allow", downloadPath = downloads.Path });

        await page.GoToAsync(baseUrl);
        await page.WaitForSelectorAsync("#layers option[value='auto']");
        var fileInput = await page.QuerySelectorAsync("#file");
        await fileInput.UploadFileAsync(Images.SamplePath);
        await page.SelectAsync("#layers", "3");
        await page.EvaluateExpressionAsync("document.getElementById('steps').value = '4'; document.getElementById('seed').value = '3';");
        await page.WaitForSelectorAsync("#start:not([disabled])");
        await page.ClickAsync("#start");
        await page.WaitForSelectorAsync("#job-panel[data-status='done']", new WaitForSelectorOptions { Timeout = 60_000 });

        Assert.Equal(3, await page.EvaluateExpressionAsync<int>("document.querySelectorAll('#layers-list .layer').length"));
        Assert.Equal(5, await page.EvaluateExpressionAsync<int>("document.querySelectorAll('#scores tbody tr').length"));
        string id = await page.EvaluateExpressionAsync<string>("JSON.parse(localStorage.getItem('stable-layers.recent'))[0].id");
        var job = t.Queue.Find(id, heartbeat: false)!;
        var stack = job.Outcome!.Stack;
        Assert.Equal((3, 3L, 4), (job.Settings.Layers!.Value, job.Settings.Seed, job.Settings.Steps));

        // The live recomposite: all layers, then with the top layer hidden; each matches the layers composited here.
        var all = await CanvasAsync(page);
        Assert.True(Pixels.MaxAbs(stack.Composite(), all) <= 3, "the page's recomposite differs from the layers' composite");
        await page.ClickAsync(".layer-toggle[data-index='2']");
        await page.WaitForFunctionAsync("() => document.getElementById('composite').dataset.renders === '2'");
        var hidden = await CanvasAsync(page);
        Assert.True(Pixels.MaxAbs(Compositor.Composite([stack[0], stack[1]]), hidden) <= 3, "hiding layer 2 did not recomposite layers 0 and 1");
        Assert.True(Pixels.MaxAbs(all, hidden) > 3, "hiding the top layer changed nothing (the test image needs a visible top layer)");

        string? shot = Environment.GetEnvironmentVariable("STABLELAYERS_SCREENSHOT");
        await page.ScreenshotAsync(Path.Combine(downloads.Path, "page.png"), new ScreenshotOptions { FullPage = true });
        if (!string.IsNullOrEmpty(shot))
        {
            File.Copy(Path.Combine(downloads.Path, "page.png"), shot, overwrite: true);
        }

        // Download the PSD through the page's link and open it with our reader.
        await page.ClickAsync("#dl-psd");
        string psdPath = Path.Combine(downloads.Path, "composite-layers.psd");
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!File.Exists(psdPath) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.True(File.Exists(psdPath), $"no PSD downloaded; the folder holds: {string.Join(", ", Directory.GetFiles(downloads.Path).Select(Path.GetFileName))}");
        var psd = PsdReader.ReadStack(psdPath);
        Assert.Equal(3, psd.Count);
        for (int k = 0; k < 3; k++)
        {
            Assert.True(Pixels.MaxAbs(stack[k], psd[k]) <= 1, $"PSD layer {k} differs from the job's layer");
        }

        Assert.Empty(elsewhere);
        Assert.Empty(consoleErrors);
        output.WriteLine($"browser: {await browser.GetVersionAsync()}; job {id} took {job.Finished - job.Started}");
    }

    private static async Task<RgbaImage> CanvasAsync(IPage page)
    {
        string url = await page.EvaluateExpressionAsync<string>("document.getElementById('composite').toDataURL('image/png')");
        return PngCodec.Decode(Convert.FromBase64String(url[(url.IndexOf(',', StringComparison.Ordinal) + 1)..]), "canvas");
    }
}
