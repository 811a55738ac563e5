#!/usr/bin/env bash
# The labeled protocol (docs/RESULTS.md "Labeled protocol"): the held-out synthetic designs with ground truth (seed 1000,
# never used by pretraining or training; 48 designs, 12 each at N = 2..5, 64 px as bench/experiments/eval_tiny_base.sh)
# decomposed at their own layer count by the base and by the base + a tuned LoRA with the same seeds, `eval --gt` on
# each, then `eval --baseline`: tuned - base per design (best-match L1, bad layers, evenness, reconstruction, layer-0
# SSIM, ...) with paired 95% bootstrap intervals, overall and by N (OUT/paired.json, OUT/paired.md). Deterministic.
#   bench/experiments/labeled_protocol.sh RUN_DIR                  # a `train` run: its LoRA and base; writes RUN_DIR/labeled
#   bench/experiments/labeled_protocol.sh LORA OUT_DIR [MODEL_DIR]  # any LoRA (default base: models/tiny-base)
# COUNT=N and STEPS=N (defaults 48, 20) change the set and the sampling steps, for smoke runs only.
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${COUNT:-48}
steps=${STEPS:-20}
if [ -d "$1" ]; then
  run=$1
  lora=$run/lora.safetensors
  out=${2:-$run/labeled}
  model=${3:-$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["model"]["base"])' "$run/config.json")}
else
  lora=$1
  out=${2:?OUT_DIR}
  model=${3:-models/tiny-base}
fi
[ -f "$lora" ] || { echo "no LoRA at $lora" >&2; exit 2; }
dotnet build -c Release src/StableLayers.Cli -v q -nologo >/dev/null
sl="dotnet src/StableLayers.Cli/bin/Release/net10.0/stable-layers.dll"
rm -rf "$out/gt" "$out/base" "$out/tuned" && mkdir -p "$out"
$sl synth --count "$count" --seed 1000 --size 64 --layers 2-5 --out "$out/gt" >/dev/null
# A folder of layered samples: each design at its own layer count, the k-th design with seed 0 + k for both models.
$sl decompose "$out/gt" --model "$model" --steps "$steps" --seed 0 --out "$out/base/pred" >/dev/null
$sl decompose "$out/gt" --model "$model" --steps "$steps" --seed 0 --lora "$lora" --out "$out/tuned/pred" >/dev/null
$sl eval --pred "$out/base/pred" --gt "$out/gt" --out "$out/base/eval" >/dev/null
$sl eval --pred "$out/tuned/pred" --gt "$out/gt" --out "$out/tuned/eval" --baseline "$out/base/eval" | sed -n '/^paired/,$p'
cp "$out/tuned/eval/paired.json" "$out/tuned/eval/paired.md" "$out/"
echo "$out/paired.md: tuned ($lora) - base ($model) on $count held-out designs"
