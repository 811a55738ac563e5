#!/usr/bin/env bash
# Does the judge pay for emptying a foreground layer? For each decomposition in PRED_DIR (a `decompose` output
# folder), scores the original and one variant per foreground layer with that layer made transparent, as one
# group, and prints how often a variant beats the original and the mean reward drop.
#   bench/experiments/empty_layer_check.sh PRED_DIR [OUT_DIR] [score options, e.g. --judge rubric]
set -euo pipefail
cd "$(dirname "$0")/../.."
pred=$1
out=${2:-runs/empty-layer-check}
shift $(( $# > 2 ? 2 : $# ))
sl="dotnet src/StableLayers.Cli/bin/Release/net10.0/stable-layers.dll"
rm -rf "$out" && mkdir -p "$out"
/usr/bin/env python3 bench/experiments/empty_layer_variants.py "$pred" "$out/variants"
for d in "$out"/variants/*/; do
  # shellcheck disable=SC2046
  $sl score "$d/orig/input.png" "$d/orig" $(ls -d "$d"/empty*) --out "$d/scores.json" "$@" >/dev/null
done
/usr/bin/env python3 - "$out" <<'PY'
import glob, json, os, sys
pays = total = 0
drops = []
for f in sorted(glob.glob(os.path.join(sys.argv[1], 'variants', '*', 'scores.json'))):
    doc = json.load(open(f))
    c = doc['candidates']
    for e in c[1:]:
        total += 1
        pays += e['reward'] > c[0]['reward']
        drops.append(c[0]['reward'] - e['reward'])
    print(f"{os.path.basename(os.path.dirname(f))}: original {c[0]['reward']:.3f}, emptied " + ' '.join(f"{e['reward']:.3f}" for e in c[1:]))
print(f"{doc['judge']}: emptying one foreground layer raised the reward in {pays}/{total} cases; mean reward drop {sum(drops) / max(1, len(drops)):.3f}")
PY
