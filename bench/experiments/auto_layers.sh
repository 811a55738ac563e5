#!/usr/bin/env bash
# Evaluates `decompose --layers auto` on held-out synthetic designs with known layer counts (synth seed 1000, 64 px,
# 2..MAXN layers, spread evenly): each design decomposed at every count 2..MAXN with the tiny base, both selection
# methods (rubric judge, distinct-layer count) run on those candidates, best-match L1 of every choice against the
# ground truth. Resumable (designs already in the JSON-lines file are skipped). Prints the markdown tables.
#   bench/experiments/auto_layers.sh [COUNT=27] [STEPS=8] [MAXN=10] [OUT_DIR=out/auto-layers] [MODEL=models/tiny-base]
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-27}
steps=${2:-8}
maxn=${3:-10}
out=${4:-out/auto-layers}
model=${5:-models/tiny-base}
dotnet build -c Release bench/StableLayers.Benchmarks -v q -nologo >/dev/null
mkdir -p "$out"
# One torch thread: on a shared 2-core machine two spinning threads per process lose more than they gain.
dotnet bench/StableLayers.Benchmarks/bin/Release/net10.0/StableLayers.Benchmarks.dll auto-layers "$model" "$count" "$steps" "$maxn" "$out/designs.jsonl" 1
python3 bench/experiments/auto_layers.py "$out/designs.jsonl" | tee "$out/results.md"
