// The tests share one loaded tiny model and the 2 CPU cores; run them one at a time so timings and the load test's
// peak RSS measure one server, not several.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
