#!/usr/bin/env bash
# The paper's tables in miniature (docs/RESULTS.md): the shipped tiny base vs Stable-Layers-tuned LoRAs,
# trained with configs/tiny-grpo.toml and one-setting variants of it, evaluated on held-out synthetic designs
# (seed 1000, never used in pretraining or training) and on the bundled real layered files. Seeded end to end.
# About 25 minutes on 2 CPU cores.
#   bench/experiments/paper_tables.sh [OUT_DIR] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/paper}
steps=${2:-60}
dotnet build -c Release src/StableLayers.Cli -v q -nologo >/dev/null
sl="dotnet src/StableLayers.Cli/bin/Release/net10.0/stable-layers.dll"
mkdir -p "$out/configs"

# One config per run: the default, then a single setting changed (same seed, same budget).
variant() { # name, sed expression
  sed -e "s/^steps = 60 .*/steps = $steps/" -e "s|^base = .*|base = \"$(pwd)/models/tiny-base\"|" -e "$2" configs/tiny-grpo.toml > "$out/configs/$1.toml"
}
variant default     's/^x//'
variant phase1-only 's/^calibrate = true .*/calibrate = false/'
variant guard-mean  's/^ratio_mode = .*/ratio_mode = "guard-mean"/'
variant ratio-none  's/^ratio_mode = .*/ratio_mode = "none"/'
variant detailed    's/^prompt = "" .*/prompt = "{caption}"/'

for run in default phase1-only guard-mean ratio-none detailed; do
  if [ ! -f "$out/$run/report.html" ]; then
    rm -rf "$out/$run"
    $sl train --config "$out/configs/$run.toml" --run-dir "$out/$run" | tail -3
  fi
done

# Held-out and real evaluations of the base and of each tuned LoRA (deterministic Euler, 20 steps, seed 0).
$sl synth --count 48 --seed 1000 --size 64 --layers 2-5 --out "$out/heldout-gt" >/dev/null
evaluate() { # name, extra decompose args...
  local name=$1; shift
  $sl decompose "$out/heldout-gt" --steps 20 --seed 0 --out "$out/eval/$name/heldout-pred" "$@" >/dev/null
  $sl eval --pred "$out/eval/$name/heldout-pred" --gt "$out/heldout-gt" --out "$out/eval/$name/heldout" >/dev/null
  $sl decompose samples/real-psd-dev --steps 20 --seed 0 --out "$out/eval/$name/real-pred" "$@" >/dev/null
  $sl eval --pred "$out/eval/$name/real-pred" --gt samples/real-psd-dev --out "$out/eval/$name/real" >/dev/null
}
evaluate base
for run in default phase1-only guard-mean ratio-none detailed; do
  evaluate "$run" --lora "$out/$run/lora.safetensors"
done

# The unlabeled protocol (real photos, N cycling 2..5) for the default run's LoRA.
bench/experiments/unlabeled_protocol.sh "$out/default/lora.safetensors" "$out/unlabeled"

python3 bench/experiments/results_md.py "$out" "$steps" > docs/RESULTS.md
echo "wrote docs/RESULTS.md from $out"
