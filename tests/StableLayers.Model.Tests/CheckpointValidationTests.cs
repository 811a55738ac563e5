using System.Text;
using System.Text.Json.Nodes;
using StableLayers.Core;
using StableLayers.Model.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

/// <summary>
/// Checkpoints whose shards and index disagree, or whose headers are corrupt: each load fails with one line naming
/// the file and the problem, before any tensor is copied - the module's values and dtypes are unchanged afterwards.
/// </summary>
public sealed class CheckpointValidationTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ckpt-validate-").FullName;

    public CheckpointValidationTests()
    {
        manual_seed(21);
        using var source = Module();
        Randomise(source);

        // 1 KB shards: lin.weight alone, then the smaller tensors grouped, 4 shards in all.
        DiffusersCheckpoint.Save(source, _dir, new { }, ScalarType.Float32, maxShardBytes: 1024);
        Shards = Directory.GetFiles(_dir, "diffusion_pytorch_model-*-of-*.safetensors").Order(StringComparer.Ordinal).ToList();
    }

    private List<string> Shards { get; }

    private string IndexPath => Path.Combine(_dir, DiffusersCheckpoint.IndexName);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static nn.Module<Tensor, Tensor> Module() =>
        nn.Sequential(("lin", nn.Linear(5, 64)), ("bn", nn.BatchNorm1d(64)), ("out", nn.Linear(64, 3)));

    private static void Randomise(nn.Module m)
    {
        using var noGrad = no_grad();
        foreach (var (_, t) in m.state_dict())
        {
            if (t.is_floating_point())
            {
                t.copy_(randn_like(t));
            }
            else
            {
                t.fill_(5);
            }
        }
    }

    private string ShardOf(string tensor) =>
        Path.Combine(_dir, JsonNode.Parse(File.ReadAllText(IndexPath))!["weight_map"]![tensor]!.GetValue<string>());

    private void EditIndex(Action<JsonObject> edit)
    {
        var index = JsonNode.Parse(File.ReadAllText(IndexPath))!.AsObject();
        edit(index["weight_map"]!.AsObject());
        File.WriteAllText(IndexPath, index.ToJsonString());
    }

    // Rewrites a file's header (keeping its data bytes), re-padded to 8 bytes as a writer would.
    private static void EditHeader(string path, Action<JsonObject> edit)
    {
        var bytes = File.ReadAllBytes(path);
        long len = BitConverter.ToInt64(bytes, 0);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, (int)len))!.AsObject();
        edit(header);
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = json.Concat(Enumerable.Repeat((byte)' ', (8 - (json.Length % 8)) % 8)).ToArray();
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)padded.Length), .. padded, .. bytes[(int)(8 + len)..]]);
    }

    // Loads into a fresh module (asking for bf16, so a premature conversion would show) and checks the failure.
    private BadInputException FailsLeavingModuleUntouched(string expectedPath, string expectedText)
    {
        using var scope = NewDisposeScope();
        manual_seed(22);
        var target = Module();
        Randomise(target);
        var before = target.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());

        var ex = Assert.Throws<BadInputException>(() =>
            DiffusersCheckpoint.Load(target, _dir, new LoadOptions { DType = ScalarType.BFloat16 }));
        Assert.Equal(expectedPath, ex.FilePath);
        Assert.Contains(expectedText, ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', ex.Message);

        var after = target.state_dict();
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (name, t) in before)
        {
            Assert.Equal(t.dtype, after[name].dtype);
            Assert.True(after[name].eq(t).all().item<bool>(), $"{name} changed by a failed load");
        }

        return ex;
    }

    [Fact]
    public void TheUnmodifiedCheckpointLoads()
    {
        Assert.Equal(4, Shards.Count);
        using var target = Module();
        var report = DiffusersCheckpoint.Load(target, _dir, new LoadOptions { DType = ScalarType.BFloat16 });
        Assert.True(report.IsExact, report.Describe());
        Assert.Equal(ScalarType.BFloat16, target.state_dict()["lin.weight"].dtype);
    }

    [Fact]
    public void AShardNamedInTheIndexThatIsMissing()
    {
        string ghost = Path.Combine(_dir, "diffusion_pytorch_model-00009-of-00009.safetensors");
        EditIndex(m => m["out.bias"] = Path.GetFileName(ghost));
        FailsLeavingModuleUntouched(ghost, "shard listed in diffusion_pytorch_model.safetensors.index.json is missing");

        File.Delete(Shards[2]);
        FailsLeavingModuleUntouched(Shards[2], "is missing");
    }

    [Fact]
    public void ATensorTheIndexMapsToAShardThatLacksIt()
    {
        string actual = ShardOf("bn.bias");
        string other = Shards.First(s => s != actual);
        EditIndex(m => m["bn.bias"] = Path.GetFileName(other));
        FailsLeavingModuleUntouched(other, $"maps tensor 'bn.bias' to this shard, but the shard does not contain it (it is in {Path.GetFileName(actual)})");
    }

    [Fact]
    public void AShardContainingATensorNotInTheIndex()
    {
        string shard = ShardOf("bn.running_var");
        EditIndex(m => m.Remove("bn.running_var"));
        FailsLeavingModuleUntouched(shard, "tensor 'bn.running_var' is not listed in diffusion_pytorch_model.safetensors.index.json");
    }

    [Fact]
    public void ATensorDuplicatedAcrossShards()
    {
        // The last shard also gets a copy of lin.bias; the index still maps lin.bias to its own shard.
        string first = ShardOf("lin.bias");
        string last = Shards[^1];
        Assert.NotEqual(first, last);
        using (var scope = NewDisposeScope())
        {
            List<KeyValuePair<string, Tensor>> tensors;
            using (var a = SafetensorsFile.Open(first))
            using (var b = SafetensorsFile.Open(last))
            {
                tensors = [.. b.Entries.Select(e => new KeyValuePair<string, Tensor>(e.Name, b.Read(e.Name))), new("lin.bias", a.Read("lin.bias"))];
            }

            SafetensorsWriter.WriteFile(last, tensors);
        }

        FailsLeavingModuleUntouched(last, $"tensor 'lin.bias' is also in {Path.GetFileName(first)} (duplicate across shards)");
    }

    [Fact]
    public void ATruncatedShard()
    {
        var bytes = File.ReadAllBytes(Shards[1]);
        File.WriteAllBytes(Shards[1], bytes[..^3]);
        FailsLeavingModuleUntouched(Shards[1], "truncated");
    }

    [Fact]
    public void TrailingBytesAfterTheLastTensor()
    {
        File.AppendAllText(Shards[3], "garbage!");
        FailsLeavingModuleUntouched(Shards[3], "8 bytes after the last tensor's data");
    }

    [Fact]
    public void ACorruptHeader()
    {
        var bytes = File.ReadAllBytes(Shards[0]);
        bytes[8] = (byte)'#';
        File.WriteAllBytes(Shards[0], bytes);
        FailsLeavingModuleUntouched(Shards[0], "safetensors header is not valid JSON");
    }

    [Fact]
    public void OverlappingDataOffsets()
    {
        // The shard of bn.weight (with other 256-byte tensors of the batch norm): the second tensor is made to alias
        // the first one's bytes, the later ones moved down and the file shortened to match, so no gap or
        // missing byte gives it away - only the overlap.
        string shard = ShardOf("bn.weight");
        long cut = 0;
        EditHeader(shard, h =>
        {
            var entries = h.Where(kv => kv.Key != "__metadata__").Select(kv => kv.Value!.AsObject())
                .OrderBy(e => e["data_offsets"]![0]!.GetValue<long>()).ToList();
            long Length(JsonObject e) => e["data_offsets"]![1]!.GetValue<long>() - e["data_offsets"]![0]!.GetValue<long>();
            Assert.True(entries.Count >= 3);
            Assert.Equal(Length(entries[0]), Length(entries[1]));
            cut = Length(entries[1]);
            entries[1]["data_offsets"] = entries[0]["data_offsets"]!.DeepClone();
            foreach (var e in entries.Skip(2))
            {
                var o = e["data_offsets"]!.AsArray();
                e["data_offsets"] = new JsonArray(o[0]!.GetValue<long>() - cut, o[1]!.GetValue<long>() - cut);
            }
        });
        File.WriteAllBytes(shard, File.ReadAllBytes(shard)[..^(int)cut]);
        FailsLeavingModuleUntouched(shard, "overlapping or gapped data_offsets");
    }

    [Fact]
    public void AMalformedIndex()
    {
        File.WriteAllText(IndexPath, """{"metadata": {}, "weight_map": {"lin.weight": 3}}""");
        FailsLeavingModuleUntouched(IndexPath, "malformed index");
        File.WriteAllText(IndexPath, """{"weight_map": {"lin.weight": "../x.safetensors"}}""");
        FailsLeavingModuleUntouched(IndexPath, "names a bad file");
    }

    [Fact]
    public void ATensorWhoseDTypeCannotGoIntoItsParameter()
    {
        // A float where the module has an int64 buffer, and an 8-bit float dtype we cannot read.
        string counter = ShardOf("bn.num_batches_tracked");
        EditHeader(counter, h =>
        {
            var e = h["bn.num_batches_tracked"]!;
            e["dtype"] = "F64";
        });
        string outShard = ShardOf("out.bias");
        EditHeader(outShard, h =>
        {
            var e = h["out.bias"]!;
            e["dtype"] = "F8_E4M3";
        });
        var ex = FailsLeavingModuleUntouched(_dir, "dtype mismatch (2): ");
        Assert.Contains("bn.num_batches_tracked: module Int64, file F64", ex.Message, StringComparison.Ordinal);
        Assert.Contains("out.bias: module Float32, file F8_E4M3 (unsupported)", ex.Message, StringComparison.Ordinal);

        using var target = Module();
        var report = DiffusersCheckpoint.Load(target, _dir, new LoadOptions { Strict = false });
        Assert.Equal(["bn.num_batches_tracked", "out.bias"], report.IncompatibleTypes.Select(m => m.Name).Order(StringComparer.Ordinal));
        Assert.Equal(7, report.Loaded.Count);
    }

    [Fact]
    public void TransformersStyleBaseNameAndTheReleasedShardNames()
    {
        Assert.Equal("diffusion_pytorch_model-00001-of-00009.safetensors", SafetensorsCheckpoint.ShardFileName(DiffusersCheckpoint.BaseName, 1, 9));
        Assert.Equal("model.safetensors.index.json", SafetensorsCheckpoint.IndexFileName(SafetensorsCheckpoint.TransformersBaseName));

        using var scope = NewDisposeScope();
        var text = Directory.CreateTempSubdirectory("ckpt-model-").FullName;
        try
        {
            // Nine 400-byte tensors in 400-byte shards: model-00001-of-00009 ... model-00009-of-00009.
            var tensors = Enumerable.Range(0, 9).Select(i => new KeyValuePair<string, Tensor>($"layers.{i}.w", full(100, (float)i))).ToList();
            SafetensorsCheckpoint.Write(text, SafetensorsCheckpoint.TransformersBaseName, tensors, null, maxShardBytes: 400);
            Assert.True(File.Exists(Path.Combine(text, "model.safetensors.index.json")));
            Assert.Equal(Enumerable.Range(1, 9).Select(i => $"model-{i:D5}-of-00009.safetensors"),
                Directory.GetFiles(text, "model-*.safetensors").Select(Path.GetFileName).Order(StringComparer.Ordinal));

            using var checkpoint = SafetensorsCheckpoint.Open(text, SafetensorsCheckpoint.TransformersBaseName);
            Assert.Equal(9, checkpoint.Files.Count);
            Assert.Equal("model-00004-of-00009.safetensors", Path.GetFileName(checkpoint.TensorFiles["layers.3.w"].Path));
            using var read = checkpoint.TensorFiles["layers.3.w"].Read("layers.3.w");
            Assert.True(read.eq(3f).all().item<bool>());

            // The diffusers base name finds nothing here.
            Assert.Equal(text, Assert.Throws<BadInputException>(() => SafetensorsCheckpoint.Open(text)).FilePath);
        }
        finally
        {
            Directory.Delete(text, recursive: true);
        }
    }

    [Fact]
    public void LargeTensorsAreCopiedInChunks()
    {
        // The chunked path (for tensors over 1 GiB) on a small tensor: 1001 floats in 12-byte chunks, into a float32
        // CPU target (copied from the mapping directly) and into a bf16 target (staged).
        using var scope = NewDisposeScope();
        var x = randn(7, 143);
        string path = Path.Combine(_dir, "chunks.safetensors");
        SafetensorsWriter.WriteFile(path, [new("x", x)]);
        int saved = SafetensorsFile.CopyChunkBytes;
        try
        {
            SafetensorsFile.CopyChunkBytes = 12;
            using var f = SafetensorsFile.Open(path);
            Assert.True(f.Read("x").eq(x).all().item<bool>());
            var direct = zeros(7, 143);
            f.CopyTo("x", direct);
            Assert.True(direct.eq(x).all().item<bool>());
            var half = zeros(7, 143, dtype: ScalarType.BFloat16);
            f.CopyTo("x", half);
            Assert.True(half.eq(x.to(ScalarType.BFloat16)).all().item<bool>());
        }
        finally
        {
            SafetensorsFile.CopyChunkBytes = saved;
        }
    }
}
