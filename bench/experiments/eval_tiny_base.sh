#!/usr/bin/env bash
# Evaluates a base model (default: the shipped models/tiny-base) on held-out synthetic designs and on the
# bundled real layered files, with the numbers the model card reports. Deterministic (fixed seeds).
#   bench/experiments/eval_tiny_base.sh [MODEL_DIR] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:-models/tiny-base}
out=${2:-out/eval-tiny-base}
dotnet build -c Release src/StableLayers.Cli -v q -nologo >/dev/null
sl="dotnet src/StableLayers.Cli/bin/Release/net10.0/stable-layers.dll"
mkdir -p "$out"
# Held-out designs: seed 1000 is never used by pretraining (seed 0) nor its latent statistics (seed 7919).
$sl synth --count 48 --seed 1000 --size 64 --layers 2-5 --out "$out/heldout-gt" >/dev/null
$sl decompose "$out/heldout-gt" --model "$model" --steps 20 --seed 0 --out "$out/heldout-pred"
$sl eval --pred "$out/heldout-pred" --gt "$out/heldout-gt" --out "$out/heldout-eval"
$sl decompose samples/real-psd-dev --model "$model" --steps 20 --seed 0 --out "$out/real-pred"
$sl eval --pred "$out/real-pred" --gt samples/real-psd-dev --out "$out/real-eval"
$sl grid "$out/heldout-pred" --out "$out/heldout-grid.png" --max 8
$sl grid "$out/real-pred" --out "$out/real-grid.png" --max 8
echo "reports: $out/heldout-eval/report.md $out/real-eval/report.md; grids: $out/*-grid.png"
