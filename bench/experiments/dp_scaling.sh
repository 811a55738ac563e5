#!/usr/bin/env bash
# Data-parallel scaling of `train` on this machine: the default config (configs/tiny-grpo.toml: 2 images x 8
# candidates per step, 10 sampling steps, 2 mini-batches) with one torch thread per process, no held-out evaluation,
# STEPS steps (default 6), as one process and as `mpirun -np 2` (Open MPI, CPU all-reduce), the same seed; prints
# steps per minute of each (training seconds from the run's checkpoint state, start-up excluded; wall seconds too),
# their ratio and the max |LoRA difference| between the two runs.
#   bench/experiments/dp_scaling.sh [OUT_DIR] [STEPS] [IMAGES_PER_STEP]
# IMAGES_PER_STEP (default: the config's 2) must split over 2 ranks; with 2 images and 2 mini-batches each mini-batch
# holds one group, on one rank, so the update does not parallelise; 4 images put one group per rank in each.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/dp-scaling}
steps=${2:-6}
images=${3:-2}
dotnet build -c Release src/StableLayers.Cli -v q -nologo >/dev/null
sl="dotnet src/StableLayers.Cli/bin/Release/net10.0/stable-layers.dll"
rm -rf "$out" && mkdir -p "$out"
sed -e "s/^steps = 60 .*/steps = $steps/" -e 's/^threads = 2 .*/threads = 1/' -e 's/^threads = 2$/threads = 1/' \
  -e "s/^images_per_step = 2/images_per_step = $images/" -e 's/^heldout_count = 16/heldout_count = 0/' -e "s|^base = \"models/tiny-base\"|base = \"$PWD/models/tiny-base\"|" \
  configs/tiny-grpo.toml > "$out/dp.toml"
grep -q '^threads = 1' "$out/dp.toml" || { echo "could not set threads = 1 in $out/dp.toml" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
t0=$(date +%s.%N)
$sl train --config "$out/dp.toml" --run-dir "$out/ranks1" >"$out/ranks1.log"
t1=$(date +%s.%N)
mpirun -np 2 --oversubscribe --bind-to none $sl train --config "$out/dp.toml" --run-dir "$out/ranks2" >"$out/ranks2.log"
t2=$(date +%s.%N)
/usr/bin/python3 - "$out" "$steps" "$t0" "$t1" "$t2" <<'PY'
import json, struct, sys
import numpy as np
out, steps, t0, t1, t2 = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:])
def lora(path):
    b = open(path, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: np.frombuffer(b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]], dtype=np.float32) for k, v in h.items() if k != '__metadata__'}
rate = {}
for ranks, wall in ((1, t1 - t0), (2, t2 - t1)):
    state = json.load(open(f'{out}/ranks{ranks}/checkpoint/state.json'))
    seconds = state['seconds']
    rate[ranks] = steps / seconds * 60
    print(f'{ranks} rank(s): {steps} steps in {seconds:.1f} s of training ({wall:.1f} s wall): {rate[ranks]:.2f} steps/min')
print(f'speed-up 2 ranks / 1: {rate[2] / rate[1]:.2f}x')
a, b = lora(f'{out}/ranks1/lora.safetensors'), lora(f'{out}/ranks2/lora.safetensors')
print(f'max |LoRA difference|: {max(np.abs(a[k] - b[k]).max() for k in a):.2e}')
PY
