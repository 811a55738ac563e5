#!/usr/bin/env bash
# The paper's unlabeled protocol (its Fig. 4; docs/EVALUATION.md "Unlabeled protocol"): the 48 real photos of
# samples/photos-dev (no ground truth) decomposed by the base and by the base + a tuned LoRA with the same seeds, the
# k-th photo in name order into N = 2 + (k mod 4) layers (12 photos per N); `eval --judge rubric` on each (bad layers
# with blank / glazed / artifact / degenerate layer 0 apart, evenness, reconstruction, the judge's layer-0 inpainting
# score and reward), then `eval --baseline`: tuned - base per photo with paired 95% bootstrap intervals
# (OUT/paired.json, OUT/paired.md), and contact sheets of both. Deterministic; about 3 minutes on 2 idle CPU cores.
#   bench/experiments/unlabeled_protocol.sh RUN_DIR                 # a `train` run: its LoRA and base; writes
#                                                                   # RUN_DIR/unlabeled and re-writes its report.html
#   bench/experiments/unlabeled_protocol.sh LORA OUT_DIR [MODEL_DIR] # any LoRA (default base: models/tiny-base)
# PHOTOS=DIR and STEPS=N (default samples/photos-dev, 20) change the inputs and sampling steps, for smoke runs only:
# the protocol's numbers are those of the defaults.
set -euo pipefail
cd "$(dirname "$0")/../.."
photos=${PHOTOS:-samples/photos-dev}
steps=${STEPS:-20}
if [ -d "$1" ]; then
  run=$1
  lora=$run/lora.safetensors
  out=${2:-$run/unlabeled}
  model=${3:-$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["model"]["base"])' "$run/config.json")}
else
  run=
  lora=$1
  out=${2:?OUT_DIR}
  model=${3:-models/tiny-base}
fi
[ -f "$lora" ] || { echo "no LoRA at $lora" >&2; exit 2; }
dotnet build -c Release src/StableLayers.Cli -v q -nologo >/dev/null
sl="dotnet src/StableLayers.Cli/bin/Release/net10.0/stable-layers.dll"
rm -rf "$out/base" "$out/tuned" && mkdir -p "$out"
mapfile -t images < <(LC_ALL=C ls "$photos"/*.png | LC_ALL=C sort)
for side in base tuned; do
  extra=()
  [ "$side" = tuned ] && extra=(--lora "$lora")
  for n in 2 3 4 5; do
    group=()
    for k in "${!images[@]}"; do
      [ $((k % 4)) -eq $((n - 2)) ] && group+=("${images[$k]}")
    done
    # Seed 1000*N + j for the j-th photo of the group: the same noise for base and tuned, a different draw per photo.
    $sl decompose "${group[@]}" --model "$model" --layers "$n" --steps "$steps" --seed $((1000 * n)) --batch-size 12 \
      --out "$out/$side/pred" "${extra[@]}" >/dev/null
  done
done
$sl eval --pred "$out/base/pred" --out "$out/base/eval" --judge rubric >/dev/null
$sl eval --pred "$out/tuned/pred" --out "$out/tuned/eval" --judge rubric --baseline "$out/base/eval" | sed -n '/^paired/,$p'
cp "$out/tuned/eval/paired.json" "$out/tuned/eval/paired.md" "$out/"
$sl grid "$out/base/pred" --out "$out/grid_base.png" --max 8 --cell 96 >/dev/null
$sl grid "$out/tuned/pred" --out "$out/grid_tuned.png" --max 8 --cell 96 >/dev/null
echo "$out/paired.md: tuned ($lora) - base ($model) on $(ls "$out/base/pred" | wc -l) photos"
if [ -n "$run" ]; then
  $sl report --run-dir "$run"
fi
