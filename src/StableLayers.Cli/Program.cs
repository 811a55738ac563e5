using StableLayers.Cli;

return StableLayersCli.Run(args);
