using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using StableLayers.Core;
using StableLayers.Server.Api;
using StableLayers.Server.Jobs;

namespace StableLayers.Server;

/// <summary>
/// <c>stable-layers serve</c>: Kestrel with the page and the HTTP API over a <see cref="JobQueue"/>. Start it, read
/// <see cref="BaseAddress"/>, dispose to stop (running jobs are cancelled).
/// </summary>
public sealed class StableLayersServer : IAsyncDisposable
{
    private readonly WebApplication app;

    private StableLayersServer(WebApplication app, JobQueue queue, Uri baseAddress)
    {
        this.app = app;
        Queue = queue;
        BaseAddress = baseAddress;
    }

    public JobQueue Queue { get; }

    /// <summary>Where it listens, e.g. http://127.0.0.1:5080/ (the real port when 0 was asked for).</summary>
    public Uri BaseAddress { get; }

    /// <summary>
    /// Binds and starts serving; the engine is owned by the caller. A port in use is a <see cref="BadInputException"/>.
    /// <paramref name="time"/> (default: the system clock) drives job times and the heartbeat watch; tests pass a fake.
    /// </summary>
    public static async Task<StableLayersServer> StartAsync(ServerOptions options, IDecomposeEngine engine, TimeProvider? time = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(engine);
        options.Validate();
        var address = ParseHost(options.Host);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        if (options.LogToConsole)
        {
            builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        }

        builder.WebHost.UseKestrel(k =>
        {
            k.Listen(address, options.Port);
            k.AddServerHeader = false;

            // The multipart framing around the file needs a little more than the file itself.
            k.Limits.MaxRequestBodySize = options.MaxUploadBytes + (64 * 1024);
        });
        var queue = new JobQueue(engine, options, time);
        var app = builder.Build();
        Routes.Map(app, queue);
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (IOException e)
        {
            await app.DisposeAsync();
            queue.Dispose();
            throw new BadInputException("--port", $"cannot listen on {options.Host}:{options.Port}: {e.Message}");
        }

        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new StableLayersServer(app, queue, new Uri(bound.Replace("[::]", "localhost", StringComparison.Ordinal).TrimEnd('/') + "/"));
    }

    public async ValueTask DisposeAsync()
    {
        Queue.Dispose();
        await app.StopAsync();
        await app.DisposeAsync();
    }

    /// <summary>Whether the server only accepts connections from this machine.</summary>
    public static bool IsLoopback(string host) => IPAddress.IsLoopback(ParseHost(host));

    public static IPAddress ParseHost(string host)
    {
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            return IPAddress.Loopback;
        }

        return IPAddress.TryParse(host, out var ip)
            ? ip
            : throw new BadInputException("--host", $"expected an IP address (127.0.0.1, ::1, 0.0.0.0) or localhost, got '{host}'");
    }
}
