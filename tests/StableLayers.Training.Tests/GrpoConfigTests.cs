using StableLayers.Core;
using StableLayers.TestSupport;
using StableLayers.Training.Grpo;

namespace StableLayers.Training.Tests;

public class GrpoConfigTests
{
    [Fact]
    public void ShippedConfigLoadsWithItsDocumentedValues()
    {
        var c = GrpoConfig.Load(Path.Combine(TestData.RepoRoot, "configs", "tiny-grpo.toml"));
        Assert.Equal(8, c.Sampling.GroupSize);
        Assert.Equal(1.2, c.Sampling.NoiseLevel);
        Assert.Equal(RatioMode.SumRescale, c.Grpo.RatioMode);
        Assert.Equal(StableLayers.Model.Schedulers.SdeKind.Sde, c.Sampling.SdeKind);
        Assert.Equal(3e-4, c.Optim.LearningRate);
        Assert.Equal(StableLayers.Judges.JudgeKind.Rubric, c.Judge.Kind);
        Assert.Equal("models/tiny-base", c.Model.Base);
        Assert.Equal(StableLayers.Distributed.DistributedBackend.Auto, c.Distributed.Backend);
        Assert.Null(c.Problem());
    }

    [Fact]
    public void AJudgePoolIsAListOfEndpoints()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "pool.toml");
        File.WriteAllText(path, "[judge]\nkind = \"vlm\"\nmodel = \"m\"\nendpoints = [\"http://a:8000/v1\", \"http://b:8000/v1\"]\nendpoint_cooldown_s = 2\n");
        var c = GrpoConfig.Load(path);
        Assert.Equal(["http://a:8000/v1", "http://b:8000/v1"], c.Judge.Endpoints);
        Assert.Null(c.Judge.Endpoint);
        Assert.Equal((2.0, 300.0), (c.Judge.EndpointCooldownSeconds, c.Judge.EndpointCooldownMaxSeconds));
    }

    [Theory]
    [InlineData("steps = 0", "steps must be at least 1")]
    [InlineData("[sampling]\ngroup_size = 1", "group_size")]
    [InlineData("[grpo]\nratio_mode = \"mean\"", "grpo.ratio_mode 'mean' is not one of none, guard-mean, sum-rescale")]
    [InlineData("[sampling]\nsde_kind = \"ode\"", "sampling.sde_kind 'ode' is not one of sde, cps")]
    [InlineData("[judge]\nkind = \"gpt\"", "judge.kind 'gpt' is not one of rubric, vlm")]
    [InlineData("[distributed]\nbackend = \"gloo\"", "distributed.backend 'gloo' is not one of auto, none, mpi, nccl")]
    [InlineData("[grpo]\nclip_rnage = 0.1", "clip_rnage")]
    [InlineData("[sampling\ngroup_size = 4", "invalid TOML")]
    [InlineData("[judge]\nkind = \"vlm\"", "needs judge.endpoint")]
    [InlineData("[judge]\nkind = \"vlm\"\nmodel = \"m\"\nendpoint = \"http://a:8000/v1\"\nendpoints = [\"http://b:8000/v1\"]", "judge.endpoint and judge.endpoints are both set")]
    [InlineData("[judge]\nendpoint_cooldown_s = -1", "judge.endpoint_cooldown_s")]
    [InlineData("steps = \"ten\"", "invalid config")]
    public void BadConfigsNameTheFileAndTheProblem(string toml, string expected)
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "bad.toml");
        File.WriteAllText(path, toml);
        var e = Assert.Throws<BadInputException>(() => GrpoConfig.Load(path));
        Assert.Contains("bad.toml", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void MissingConfigIsAClearError()
    {
        var e = Assert.Throws<BadInputException>(() => GrpoConfig.Load("/nonexistent/x.toml"));
        Assert.Contains("file not found", e.Message);
    }
}

public class TrainingImagesTests
{
    [Fact]
    public void FolderImagesAreCroppedResizedAndRevisitedInASeededOrder()
    {
        using var dir = new TempDir();
        for (int i = 0; i < 3; i++)
        {
            var img = StableLayers.Core.Imaging.RgbaImage.Filled(60 + (i * 10), 40, (byte)(i * 80), 0, 0, 255);
            StableLayers.Core.Imaging.PngCodec.Write(Path.Combine(dir.Path, $"img{i}.png"), img);
        }

        File.WriteAllText(Path.Combine(dir.Path, "notes.txt"), "ignored");
        var a = TrainingImages.Folder(dir.Path, 16, seed: 5);
        var b = TrainingImages.Folder(dir.Path, 16, seed: 5);
        var firstEpoch = Enumerable.Range(0, 3).Select(i => a.At(i)).ToList();
        Assert.All(firstEpoch, t => Assert.Equal((16, 16), (t.Image.Width, t.Image.Height)));
        Assert.Equal(["img0", "img1", "img2"], firstEpoch.Select(t => t.Id).Order());
        Assert.Equal(firstEpoch.Select(t => t.Id), Enumerable.Range(0, 3).Select(i => b.At(i).Id));
        Assert.True(firstEpoch[0].Image.PixelsEqual(b.At(0).Image));
    }

    [Fact]
    public void CorruptOrMissingImagesAreNamed()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(Path.Combine(dir.Path, "broken.png"), [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        var images = TrainingImages.Folder(dir.Path, 16, seed: 0);
        var e = Assert.Throws<BadInputException>(() => images.At(0));
        Assert.Contains("broken.png", e.Message);
        using var empty = new TempDir();
        Assert.Contains("no images", Assert.Throws<BadInputException>(() => TrainingImages.Folder(empty.Path, 16, 0)).Message);
    }

    [Fact]
    public void PrepareCentreCropsAndFlattensTransparency()
    {
        var img = new StableLayers.Core.Imaging.RgbaImage(6, 2);
        for (int x = 0; x < 6; x++)
        {
            // Columns 2..3 are the centre square; make them transparent red.
            byte a = x is 2 or 3 ? (byte)0 : (byte)255;
            for (int y = 0; y < 2; y++)
            {
                int o = ((y * 6) + x) * 4;
                img.Pixels[o] = 255;
                img.Pixels[o + 3] = a;
            }
        }

        var p = TrainingImages.Prepare(img, 2);
        Assert.True(p.IsOpaque());
        Assert.All(Enumerable.Range(0, 4), i => Assert.Equal(255, p.Pixels[(i * 4) + 1]));
    }
}
