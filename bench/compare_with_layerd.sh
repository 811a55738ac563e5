#!/usr/bin/env bash
# Times our full metric set and LayerD protocol against LayerD's own Python evaluation on the same
# 640x640 5-layer sample, back to back on this machine (compare the ratio, not the absolute times).
#   bench/compare_with_layerd.sh /path/to/LayerD/src
set -euo pipefail
cd "$(dirname "$0")/.."
layerd_src=${1:?usage: bench/compare_with_layerd.sh /path/to/LayerD/src}
dotnet build -c Release bench/StableLayers.Benchmarks -v q -nologo >/dev/null
bench=bench/StableLayers.Benchmarks/bin/Release/net10.0/StableLayers.Benchmarks.dll
tmp=$(mktemp -d)
dotnet "$bench" write-sample "$tmp"
echo "== C# (StableLayers)"
dotnet "$bench" quick 15
echo "== Python (LayerD's evaluation code)"
/usr/bin/python3 bench/layerd_python_timing.py --layerd-src "$layerd_src" --pred "$tmp/pred/sample" --gt "$tmp/gt/sample" --repeat 3
rm -rf "$tmp"
