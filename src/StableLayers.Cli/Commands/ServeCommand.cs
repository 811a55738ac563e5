using System.CommandLine;
using StableLayers.Judges.Rubric;
using StableLayers.Model;
using StableLayers.Server;
using StableLayers.Server.Jobs;

namespace StableLayers.Cli.Commands;

/// <summary>
/// <c>stable-layers serve [--model DIR] [--lora FILE] [--host 127.0.0.1] [--port 5080]</c>: the web page and HTTP API
/// (README "Web page and HTTP API"), decomposing uploads with one loaded model and scoring them with the offline judge.
/// </summary>
public static class ServeCommand
{
    public static Command Build()
    {
        var defaults = new ServerOptions();
        var model = new Option<DirectoryInfo?>("--model") { Description = "Model folder (default: the shipped tiny base, models/tiny-base)" };
        var lora = new Option<FileInfo?>("--lora") { Description = "LoRA adapter (.safetensors) merged into the transformer at start-up" };
        var host = new Option<string>("--host") { Description = "Address to listen on: 127.0.0.1 (this machine only, default), ::1, localhost, or 0.0.0.0 to let the network in", DefaultValueFactory = _ => defaults.Host };
        var port = new Option<int>("--port") { Description = "TCP port", DefaultValueFactory = _ => ServerOptions.DefaultPort };
        var maxRunning = new Option<int>("--max-running") { Description = "Jobs decomposing at once", DefaultValueFactory = _ => defaults.MaxRunning };
        var maxQueued = new Option<int>("--max-queued") { Description = "Jobs waiting for a runner; further uploads get 429", DefaultValueFactory = _ => defaults.MaxQueued };
        var maxUploadMb = new Option<double>("--max-upload-mb") { Description = "Largest upload in MiB", DefaultValueFactory = _ => defaults.MaxUploadBytes / 1048576.0 };
        var maxUploadPixels = new Option<long>("--max-upload-pixels") { Description = "Largest uploaded image (width*height)", DefaultValueFactory = _ => defaults.MaxUploadPixels };
        var maxSteps = new Option<int>("--max-steps") { Description = "Most sampling steps a job may ask for", DefaultValueFactory = _ => defaults.MaxSteps };
        var heartbeat = new Option<double>("--heartbeat-timeout") { Description = "Seconds without a status request after which a queued or running job is cancelled (its client went away)", DefaultValueFactory = _ => defaults.HeartbeatTimeout.TotalSeconds };
        var keep = new Option<int>("--keep-jobs") { Description = "Finished jobs kept in memory (oldest forgotten first)", DefaultValueFactory = _ => defaults.KeepFinished };
        var threads = new Option<int?>("--threads") { Description = "libtorch CPU threads (default: the cores divided among --max-running runners, at least 1)" };
        var device = DeviceOption.Create();
        var dtype = DTypeOption.Create();
        var cmd = new Command("serve", "Web page and HTTP API: upload an image, watch it decompose, inspect the layers, download PSD/ORA/ZIP")
        {
            model, lora, host, port, maxRunning, maxQueued, maxUploadMb, maxUploadPixels, maxSteps, heartbeat, keep, threads, device, dtype,
        };
        cmd.SetAction(async (parse, cancel) =>
        {
            StableLayersCli.ApplyGlobalOptions(parse);
            double mb = parse.GetValue(maxUploadMb);
            double hb = parse.GetValue(heartbeat);
            var options = new ServerOptions
            {
                Host = parse.GetRequiredValue(host),
                Port = parse.GetValue(port),
                MaxRunning = parse.GetValue(maxRunning),
                MaxQueued = parse.GetValue(maxQueued),
                MaxUploadBytes = mb is > 0 and < 1 << 20 ? (long)(mb * 1048576) : throw new Core.BadInputException("--max-upload-mb", $"must be in (0, 1048576), got {mb}"),
                MaxUploadPixels = parse.GetValue(maxUploadPixels),
                MaxSteps = parse.GetValue(maxSteps),
                HeartbeatTimeout = hb is > 0 and < 86400 ? TimeSpan.FromSeconds(hb) : throw new Core.BadInputException("--heartbeat-timeout", $"must be in (0, 86400) seconds, got {hb}"),
                KeepFinished = parse.GetValue(keep),
                LogToConsole = true,
            };
            options.Validate();
            StableLayersServer.ParseHost(options.Host);

            // Each runner computes on its own thread; more intra-op threads than cores per runner only spin against each other.
            int torchThreads = parse.GetValue(threads) ?? Math.Max(1, Environment.ProcessorCount / options.MaxRunning);
            if (torchThreads < 1)
            {
                throw new Core.BadInputException("--threads", $"must be at least 1, got {torchThreads}");
            }

            TorchSharp.torch.set_num_threads(torchThreads);
            var computeDevice = DeviceOption.Resolve(parse, device);
            var computeDType = DTypeOption.Resolve(parse, dtype, computeDevice);
            string modelDir = parse.GetValue(model)?.FullName ?? DecomposeCommand.DefaultModelDir();
            var stdout = parse.InvocationConfiguration.Output;
            using var loaded = LayeredModel.Load(modelDir, computeDevice, computeDType);
            string name = Path.GetFileName(modelDir.TrimEnd(Path.DirectorySeparatorChar));
            if (parse.GetValue(lora)?.FullName is string loraPath)
            {
                var adapter = loaded.MergeLora(loraPath);
                name += $" + {Path.GetFileName(loraPath)}";
                stdout.WriteLine($"merged LoRA {Path.GetFileName(loraPath)} (rank {adapter.Rank}, alpha {adapter.Alpha}, {adapter.TargetModules.Count} modules)");
            }

            var engine = new ModelEngine(loaded, new RubricJudge(), name);
            await using var server = await StableLayersServer.StartAsync(options, engine, cancellationToken: cancel);
            if (!StableLayersServer.IsLoopback(options.Host))
            {
                stdout.WriteLine($"warning: listening on {options.Host}: anyone who can reach this port can submit jobs");
            }

            stdout.WriteLine($"serving {name} on {server.BaseAddress} (judge {engine.JudgeName}; {options.MaxRunning} running with {torchThreads} thread(s) each, {options.MaxQueued} waiting at most); Ctrl-C stops");
            try
            {
                await Task.Delay(Timeout.Infinite, cancel);
            }
            catch (OperationCanceledException)
            {
            }

            stdout.WriteLine("stopped");
            return StableLayersCli.ExitOk;
        });
        return cmd;
    }
}
