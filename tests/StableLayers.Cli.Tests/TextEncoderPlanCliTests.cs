using StableLayers.Model.Planning;
using StableLayers.Model.Tests;
using StableLayers.Model.Text;
using StableLayers.TestSupport;
using static TorchSharp.torch;
using static StableLayers.Cli.Tests.InProcessCli;

namespace StableLayers.Cli.Tests;

/// <summary>plan with the released model's text encoder: counted from a released-layout folder's config, offloaded or resident.</summary>
public sealed class TextEncoderPlanCliTests
{
    [Fact]
    public void Plans_a_released_layout_folder_with_its_encoder_offloaded_or_resident()
    {
        using var tmp = new TempDir();
        string model = tmp.File("model");
        ReleasedLayoutFolder.Write(model);
        long parameters;
        using (var meta = new Qwen25VlTextEncoder(Qwen25VlTextConfig.Load(Path.Combine(model, "text_encoder", "config.json")), META))
        {
            parameters = meta.parameters().Sum(p => p.numel());
        }

        var (code, stdout, err) = Run("plan", "--config", model, "--resolution", "64", "--layers", "2", "--text-tokens", "100", "--text-encoder", "offload");
        Assert.True(code == 0, err);
        Assert.Contains($"{MemoryPlan.Count(parameters)} params x 2 B = ", stdout, StringComparison.Ordinal);
        Assert.Contains("while encoding, released after", stdout, StringComparison.Ordinal);
        Assert.Contains("text encoding (once)", stdout, StringComparison.Ordinal);
        Assert.Contains("100 text (134 through the text encoder)", stdout, StringComparison.Ordinal);

        (code, stdout, err) = Run("plan", "--config", model, "--resolution", "64", "--text-encoder", "resident");
        Assert.True(code == 0, err);
        Assert.Contains($"{MemoryPlan.Count(parameters)} params x 2 B, resident", stdout, StringComparison.Ordinal);

        // The released architecture with its encoder offloaded: encoding with every module loaded does not fit 48 GB.
        (code, stdout, err) = Run("plan", "--text-encoder", "offload", "--checkpointing", "true");
        Assert.True(code == 0, err);
        Assert.Contains("7.07B params x 2 B", stdout, StringComparison.Ordinal);
        Assert.Contains(stdout.Split('\n'), l => l.StartsWith("48 GB", StringComparison.Ordinal) && l.Contains("encoding the prompt", StringComparison.Ordinal));

        (code, _, err) = Run("plan", "--text-encoder", "offload", "--text-tokens", "1025");
        Assert.Equal(2, code);
        Assert.Contains("--text-tokens", err, StringComparison.Ordinal);
    }
}
