#!/usr/bin/env bash
# Does the judge rank the G samples of one design the way ground truth does? That within-group ranking is
# all GRPO uses. Decomposes 12 synthetic designs (seed 3000: never used for training or evaluation) with the
# tiny base at 8 noise seeds each (pred/<design>/s<k>/, one group per design) and runs judge-agreement.
# Prints the mean within-design Spearman of each criterion and the reward against the ground-truth metrics.
# About 2 minutes on 2 CPU cores.
#   bench/experiments/within_design_agreement.sh [OUT_DIR] [SYNTH_SEED] [judge-agreement options...]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/within-design}
seed=${2:-3000}
shift $(( $# > 2 ? 2 : $# ))
dotnet build -c Release src/StableLayers.Cli -v q -nologo >/dev/null
sl="dotnet src/StableLayers.Cli/bin/Release/net10.0/stable-layers.dll"
rm -rf "$out" && mkdir -p "$out"
$sl synth --count 12 --seed "$seed" --size 64 --layers 2-5 --out "$out/gt" >/dev/null
for k in 0 1 2 3 4 5 6 7; do
  # decompose gives the i-th design seed base + i, so base 100*k keeps the 8 draws of a design distinct.
  $sl decompose "$out/gt" --steps 20 --seed $((100 * k)) --out "$out/flat/s$k" >/dev/null
  for d in "$out/flat/s$k"/*/; do
    name=$(basename "$d"); mkdir -p "$out/pred/$name"; mv "$d" "$out/pred/$name/s$k"
  done
done
$sl judge-agreement --gt "$out/gt" --pred "$out/pred" --out "$out/agreement.json" "$@"
