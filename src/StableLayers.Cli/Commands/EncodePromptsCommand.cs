using System.CommandLine;
using StableLayers.Core;
using StableLayers.Model;
using StableLayers.Model.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Cli.Commands;

/// <summary>
/// <c>stable-layers encode-prompts --model DIR (--prompts FILE | --prompt TEXT) --out table.safetensors [--device D]</c>:
/// prompt embeddings of the released model's Qwen2.5-VL text encoder, written as the table
/// <see cref="PrecomputedPromptEncoder"/> reads, so the encoder need not be loaded again.
/// </summary>
public static class EncodePromptsCommand
{
    public static Command Build()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Model folder in the released layout (text_encoder/ with Qwen2.5-VL, tokenizer/)", Required = true };
        var promptsFile = new Option<FileInfo?>("--prompts") { Description = "Text file, one prompt per line (empty lines skipped)" };
        var prompt = new Option<string[]>("--prompt") { Description = "A prompt (repeatable)", AllowMultipleArgumentsPerToken = false };
        var output = new Option<FileInfo>("--out") { Description = "The table (.safetensors): prompt_embeds.{i} [tokens, dim] + metadata prompt.{i}", Required = true };
        var device = DeviceOption.Create();
        var cmd = new Command("encode-prompts", "Encode prompts with the released model's text encoder into a reusable embedding table")
        {
            model, promptsFile, prompt, output, device,
        };
        cmd.SetAction(parse =>
        {
            StableLayersCli.ApplyGlobalOptions(parse);
            var prompts = new List<string>(parse.GetValue(prompt) ?? []);
            if (parse.GetValue(promptsFile) is { } file)
            {
                if (!file.Exists)
                {
                    throw new BadInputException(file.FullName, "prompts file not found");
                }

                prompts.AddRange(File.ReadAllLines(file.FullName).Where(l => l.Trim().Length > 0));
            }

            prompts = prompts.Distinct(StringComparer.Ordinal).ToList();
            if (prompts.Count == 0)
            {
                throw new BadInputException("--prompt", "no prompts (give --prompt TEXT or --prompts FILE)");
            }

            var computeDevice = DeviceOption.Resolve(parse, device);
            string dir = parse.GetRequiredValue(model).FullName;
            // The reference runs the encoder in bf16 on the GPU; on the CPU float32 is faster and exact.
            var dtype = computeDevice.IsCuda ? ScalarType.BFloat16 : ScalarType.Float32;
            using var encoder = QwenPromptEncoder.Load(Path.Combine(dir, "text_encoder"), Path.Combine(dir, "tokenizer"), computeDevice.Torch, dtype, rejectOverLimit: true);
            foreach (var p in prompts)
            {
                encoder.CheckLength(p);
            }

            var rows = new List<(string Prompt, Tensor Embeddings)>();
            using var scope = NewDisposeScope();
            foreach (var p in prompts)
            {
                var e = encoder.Encode([p]);
                rows.Add((p, e.Embeddings[0]));
            }

            string outPath = parse.GetRequiredValue(output).FullName;
            PrecomputedPromptEncoder.Write(outPath, rows);
            parse.InvocationConfiguration.Output.WriteLine(
                $"{prompts.Count} prompts ({string.Join(", ", rows.Select(r => r.Embeddings.shape[0]))} tokens, width {encoder.Dim}) -> {outPath}");
            return StableLayersCli.ExitOk;
        });
        return cmd;
    }
}
