using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.Model.Inference;
using StableLayers.Model.Text;
using StableLayers.TestSupport;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

/// <summary>
/// Makes a tensor created without an explicit device fail loudly: while it lives, libtorch's default device is
/// <c>meta</c> (shapes, no data), so such a tensor lands there and the first op that mixes it with the model's CPU
/// tensors throws "Expected all tensors to be on the same device", and a host read of it throws "Cannot copy out
/// of meta tensor". Code that passes the model's device everywhere runs unchanged. (The model itself cannot run on
/// meta: libtorch 2.10 has no meta kernels for convolution, SDPA with a mask, index_select or group norm.)
/// </summary>
internal sealed class StrayTensorGuard : IDisposable
{
    public StrayTensorGuard() => set_default_device(new Device(DeviceType.META));

    public void Dispose() => set_default_device(CPU);
}

public class DeviceTests
{
    private static readonly CudaInfo CpuBuild = new(CudaBuild: false, DeviceCount: 0);
    private static readonly CudaInfo OneGpu = new(CudaBuild: true, DeviceCount: 1);

    private static LayeredModel SmallModel()
    {
        var model = LayeredModel.Create(LayeredModelTests.SmallConfig(), WordTokenizer.Build(["a red circle"]), seed: 3);
        model.Transformer.eval();
        model.Vae.eval();
        ((TinyTextEncoder)model.Prompts).eval();
        return model;
    }


    [Fact]
    public void TheGuardCatchesATensorCreatedWithoutADevice()
    {
        using var scope = NewDisposeScope();
        var onCpu = ones(2, 3, device: CPU);
        using (new StrayTensorGuard())
        {
            var e = Assert.ThrowsAny<Exception>(() => (onCpu + ones(2, 3)).sum());
            Assert.Contains("same device", e.Message, StringComparison.Ordinal);
            Assert.ThrowsAny<Exception>(() => HostReads.ToArray<float>(zeros(2)));
            // Explicit devices are untouched, and so are 0-dim results of CPU tensors.
            Assert.Equal(6f, HostReads.ToArray<float>((onCpu + ones(2, 3, device: CPU)).sum())[0] / 2);
        }

        Assert.Equal(DeviceType.CPU, zeros(1).device_type);
    }

    [Fact]
    public void ADecomposePassCreatesEveryTensorOnTheModelsDeviceAndReadsTheHostOncePerBatch()
    {
        using var scope = NewDisposeScope();
        using var model = SmallModel();
        var decomposer = new LayeredDecomposer(model);
        RgbaImage[] inputs = [TestImages.Noise(40, 40, 1), TestImages.Noise(40, 40, 2), TestImages.Noise(64, 24, 3)];
        var options = new DecomposeOptions { Steps = 2, Layers = 2, Cfg = 2f, Prompt = "a red circle" };
        var expected = decomposer.Decompose(inputs, [options with { Seed = 1 }, options with { Seed = 2 }, options with { Seed = 3 }]);
        foreach (var sampler in new[] { SamplerKind.Euler, SamplerKind.Heun })
        {
            IReadOnlyList<Core.Layers.LayerStack> stacks;
            long before = HostReads.Count;
            using (new StrayTensorGuard())
            {
                var o = options with { Sampler = sampler };
                stacks = decomposer.Decompose(inputs, [o with { Seed = 1 }, o with { Seed = 2 }, o with { Seed = 3 }]);
            }

            // Two batches (two size buckets): one image read each, nothing else crosses to the host.
            Assert.Equal(2, HostReads.Count - before);
            Assert.Equal(3, stacks.Count);
            Assert.All(stacks, s => Assert.Equal(2, s.Count));
            if (sampler == SamplerKind.Euler)
            {
                // The guard changes where nothing is created: same pixels as without it.
                for (int i = 0; i < 3; i++)
                {
                    for (int k = 0; k < 2; k++)
                    {
                        Assert.Equal(expected[i][k].Pixels, stacks[i][k].Pixels);
                    }
                }
            }
        }
    }

    [Fact]
    public void DevicesParseOnceWithClearErrorsNamingTheOption()
    {
        Assert.Equal(ComputeDevice.Cpu, ComputeDevice.Parse("cpu", cuda: OneGpu));
        Assert.Equal(ComputeDevice.Cpu, ComputeDevice.Parse(null, cuda: CpuBuild));
        Assert.Equal(ComputeDevice.Cpu, ComputeDevice.Parse("auto", cuda: CpuBuild));
        Assert.Equal(new ComputeDevice(DeviceType.CUDA, 0), ComputeDevice.Parse(null, cuda: OneGpu));
        Assert.Equal(new ComputeDevice(DeviceType.CUDA, 0), ComputeDevice.Parse("CUDA", cuda: OneGpu));
        Assert.Equal(new ComputeDevice(DeviceType.CUDA, 1), ComputeDevice.Parse("cuda:1", cuda: new CudaInfo(true, 2)));
        Assert.Equal("cuda:1", ComputeDevice.Parse("cuda:1", cuda: new CudaInfo(true, 2)).ToString());

        Assert.Throws<BadInputException>(() => ComputeDevice.Parse("cuda:1", cuda: OneGpu));
        var missing = Assert.Throws<BadInputException>(() => ComputeDevice.Parse("cuda:7", cuda: OneGpu));
        Assert.Equal("--device: cuda:7 does not exist: this machine has 1 CUDA device (cuda:0)", missing.Message);
        var cpuOnly = Assert.Throws<BadInputException>(() => ComputeDevice.Parse("cuda", "config.toml: device", CpuBuild));
        Assert.StartsWith("config.toml: device: cuda:0 asked for, but this build has the CPU-only libtorch", cpuOnly.Message, StringComparison.Ordinal);
        Assert.Contains("-p:TorchBackend=cuda", cpuOnly.Message, StringComparison.Ordinal);
        var noDriver = Assert.Throws<BadInputException>(() => ComputeDevice.Parse("cuda:0", cuda: new CudaInfo(true, 0)));
        Assert.Contains("sees no CUDA device", noDriver.Message, StringComparison.Ordinal);
        foreach (var bad in new[] { "gpu", "cuda:", "cuda:-1", "cuda:x", "cpu:0", "cuda:1:2" })
        {
            var e = Assert.Throws<BadInputException>(() => ComputeDevice.Parse(bad, cuda: OneGpu));
            Assert.Equal("--device", e.FilePath);
            Assert.False(ComputeDevice.IsWellFormed(bad), bad);
        }

        Assert.True(ComputeDevice.IsWellFormed("cuda:12") && ComputeDevice.IsWellFormed("auto") && ComputeDevice.IsWellFormed("cpu"));
        // This machine: no CUDA in the CPU build, so the default is the CPU and asking for CUDA is refused.
        Assert.Equal(ComputeDevice.Cpu, ComputeDevice.Parse(null));
        Assert.Throws<BadInputException>(() => ComputeDevice.Parse("cuda"));
    }

    [Fact]
    public void DTypesTheDeviceCannotRunAreRefusedNamingTheOption()
    {
        Assert.Equal(ScalarType.BFloat16, ComputeDevice.ParseDType("bf16"));
        Assert.Equal(ScalarType.Float32, ComputeDevice.ParseDType("float32"));
        Assert.Equal(ScalarType.Float16, ComputeDevice.ParseDType("fp16"));
        Assert.Equal("--dtype", Assert.Throws<BadInputException>(() => ComputeDevice.ParseDType("int8")).FilePath);
        ComputeDevice.Cpu.CheckDType(ScalarType.Float32);
        ComputeDevice.Cpu.CheckDType(ScalarType.BFloat16);
        var half = Assert.Throws<BadInputException>(() => ComputeDevice.Cpu.CheckDType(ScalarType.Float16, "model.dtype"));
        Assert.StartsWith("model.dtype: float16 is not supported on the CPU", half.Message, StringComparison.Ordinal);
        Assert.Throws<BadInputException>(() => ComputeDevice.Cpu.CheckDType(ScalarType.Int64));
    }

    [Fact]
    public void HostReadsCountsOneTransferForABatchOfScalars()
    {
        using var scope = NewDisposeScope();
        long before = HostReads.Count;
        var values = HostReads.Scalars(tensor(1.5f), tensor(2.25, dtype: ScalarType.Float64), ones(1, dtype: ScalarType.BFloat16));
        Assert.Equal([1.5, 2.25, 1.0], values);
        Assert.Equal(1, HostReads.Count - before);
    }

    [Fact]
    public void LoadingOntoTheCpuKeepsTheModelThereAndMovesNothing()
    {
        using var tmp = new TestSupport.TempDir();
        using (var model = SmallModel())
        {
            model.Save(tmp.Path);
        }

        using var loaded = LayeredModel.Load(tmp.Path, ComputeDevice.Cpu);
        Assert.Equal(DeviceType.CPU, loaded.Device.type);
        Assert.Equal(ComputeDevice.Cpu, ComputeDevice.Of(loaded.Device));
        Assert.Equal(new ComputeDevice(DeviceType.CUDA, 0), ComputeDevice.Of(new Device(DeviceType.CUDA)));
    }
}
