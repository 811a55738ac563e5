// TorchSharp's default generator is process-global: tests that seed it (manual_seed) and then build
// models must not interleave with other tests drawing from it, or "same seed, same weights" races.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
