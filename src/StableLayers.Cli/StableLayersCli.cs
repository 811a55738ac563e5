using System.CommandLine;
using StableLayers.Cli.Commands;
using StableLayers.Core;
using StableLayers.Core.Imaging;

namespace StableLayers.Cli;

/// <summary>The <c>stable-layers</c> command: wiring of sub-commands and the error policy shared by all.</summary>
public static class StableLayersCli
{
    public const int ExitOk = 0;
    public const int ExitError = 1;
    public const int ExitBadInput = 2;
    public const int ExitCancelled = 130;

    public static readonly Option<long> MaxPixelsOption = new("--max-pixels")
    {
        Description = "Largest image (width*height) any reader accepts",
        DefaultValueFactory = _ => ImageLimits.DefaultMaxPixels,
        Recursive = true,
    };

    public static RootCommand Build()
    {
        var root = new RootCommand("StableLayers: layer decomposition models, RL fine-tuning with a VLM judge, and evaluation.")
        {
            MaxPixelsOption,
            EvalCommand.Build(),
            ConvertCommand.Build(),
            SynthCommand.Build(),
            PretrainCommand.Build(),
            DecomposeCommand.Build(),
            EncodePromptsCommand.Build(),
            GridCommand.Build(),
            TrainCommand.Build(),
            ReportCommand.Build(),
            ScoreCommand.Build(),
            JudgeAgreementCommand.Build(),
            PlanCommand.Build(),
            ServeCommand.Build(),
        };
        return root;
    }

    public static int Run(string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        var root = Build();
        var config = new InvocationConfiguration
        {
            Output = stdout ?? Console.Out,
            Error = stderr ?? Console.Error,
            EnableDefaultExceptionHandler = false,
        };
        var parsed = root.Parse(args);
        var err = config.Error;
        try
        {
            return parsed.Invoke(config);
        }
        catch (Exception e) when (Unwrap(e) is BadInputException bad)
        {
            err.WriteLine($"error: {bad.Message}");
            return ExitBadInput;
        }
        catch (Exception e) when (Unwrap(e) is OperationCanceledException)
        {
            err.WriteLine("cancelled");
            return ExitCancelled;
        }
        catch (Exception e) when (Unwrap(e) is IOException or UnauthorizedAccessException)
        {
            err.WriteLine($"error: {Unwrap(e).Message}");
            return ExitError;
        }
        catch (Exception e)
        {
            err.WriteLine($"error: unexpected {Unwrap(e).GetType().Name}: {Unwrap(e).Message}");
            if (Environment.GetEnvironmentVariable("STABLELAYERS_DEBUG") == "1")
            {
                err.WriteLine(e);
            }

            return ExitError;
        }
    }

    /// <summary>Applies the options every command shares (pixel limit).</summary>
    public static void ApplyGlobalOptions(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        long max = parse.GetValue(MaxPixelsOption);
        if (max < 1)
        {
            throw new BadInputException("--max-pixels", $"must be positive, got {max}");
        }

        ImageLimits.MaxPixels = max;
    }

    private static Exception Unwrap(Exception e)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } agg)
        {
            e = agg.InnerExceptions[0];
        }

        return e is System.Reflection.TargetInvocationException { InnerException: { } inner } ? inner : e;
    }
}
