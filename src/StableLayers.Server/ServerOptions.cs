namespace StableLayers.Server;

/// <summary>Settings of <c>stable-layers serve</c>: where it listens, how many jobs run and wait, and the upload limits.</summary>
public sealed record ServerOptions
{
    public const int DefaultPort = 5080;

    /// <summary>An IP address or "localhost"; loopback unless told otherwise, so only this machine can submit jobs.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one (tests).</summary>
    public int Port { get; init; } = DefaultPort;

    /// <summary>Jobs decomposing at once (each uses the model; on 2 cores more than one only shares the cores).</summary>
    public int MaxRunning { get; init; } = 1;

    /// <summary>Jobs waiting for a free runner; one more upload is answered 429.</summary>
    public int MaxQueued { get; init; } = 8;

    /// <summary>Largest uploaded file in bytes (the request body may exceed it only by the multipart framing).</summary>
    public long MaxUploadBytes { get; init; } = 20L * 1024 * 1024;

    /// <summary>Largest uploaded image in pixels (width * height), checked from the header before any pixel is decoded.</summary>
    public long MaxUploadPixels { get; init; } = 4L * 1024 * 1024;

    /// <summary>Largest number of sampling steps a job may ask for.</summary>
    public int MaxSteps { get; init; } = 100;

    /// <summary>
    /// A queued or running job whose status nobody asked for in this long is cancelled: the page polls every half second,
    /// so a closed tab stops its job. A <c>?wait=1</c> upload keeps its job alive while its connection is open instead.
    /// </summary>
    public TimeSpan HeartbeatTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Finished jobs kept in memory (oldest forgotten first); their layers and downloads are served until then.</summary>
    public int KeepFinished { get; init; } = 8;

    /// <summary>Write ASP.NET Core's warnings and errors to the console (the CLI does; tests do not).</summary>
    public bool LogToConsole { get; init; }

    public void Validate()
    {
        Check(Port is >= 0 and <= 65535, "--port", $"must be 0..65535, got {Port}");
        Check(MaxRunning >= 1, "--max-running", $"must be at least 1, got {MaxRunning}");
        Check(MaxQueued >= 0, "--max-queued", $"must be 0 or more, got {MaxQueued}");
        Check(MaxUploadBytes >= 1024, "--max-upload-mb", $"must be at least 1 KiB, got {MaxUploadBytes} bytes");
        Check(MaxUploadPixels >= 1, "--max-upload-pixels", $"must be positive, got {MaxUploadPixels}");
        Check(MaxSteps >= 1, "--max-steps", $"must be at least 1, got {MaxSteps}");
        Check(HeartbeatTimeout > TimeSpan.Zero, "--heartbeat-timeout", $"must be positive, got {HeartbeatTimeout.TotalSeconds} s");
        Check(KeepFinished >= 1, "--keep-jobs", $"must be at least 1, got {KeepFinished}");
    }

    private static void Check(bool ok, string option, string message)
    {
        if (!ok)
        {
            throw new Core.BadInputException(option, message);
        }
    }
}
