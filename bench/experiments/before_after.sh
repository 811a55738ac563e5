#!/usr/bin/env bash
# The README's before/after picture: real layered designs decomposed by the shipped tiny base and by the
# base with a tuned LoRA (same seed), rows = ground truth, base, tuned, as a contact sheet.
#   bench/experiments/before_after.sh LORA [OUT_PNG]
set -euo pipefail
cd "$(dirname "$0")/../.."
lora=$1
png=${2:-docs/images/before_after.png}
sl="dotnet src/StableLayers.Cli/bin/Release/net10.0/stable-layers.dll"
tmp=$(mktemp -d)
for sample in groups text-test; do
  $sl decompose samples/real-psd-dev/$sample/composite.png --layers "$(ls samples/real-psd-dev/$sample/layer_*.png | wc -l)" --seed 0 --out "$tmp/base" >/dev/null
  $sl decompose samples/real-psd-dev/$sample/composite.png --layers "$(ls samples/real-psd-dev/$sample/layer_*.png | wc -l)" --seed 0 --lora "$lora" --out "$tmp/tuned" >/dev/null
  cp -r samples/real-psd-dev/$sample "$tmp/rows/${sample}-1-ground-truth" 2>/dev/null || { mkdir -p "$tmp/rows"; cp -r samples/real-psd-dev/$sample "$tmp/rows/${sample}-1-ground-truth"; }
  cp -r "$tmp/base/composite" "$tmp/rows/${sample}-2-base"
  cp -r "$tmp/tuned/composite" "$tmp/rows/${sample}-3-tuned"
  rm -rf "$tmp/base" "$tmp/tuned"
done
mkdir -p "$(dirname "$png")"
$sl grid "$tmp/rows" --out "$png" --max 6 --cell 120
rm -rf "$tmp"
echo "wrote $png (rows per design: ground truth, base, tuned)"
