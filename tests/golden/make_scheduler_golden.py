#!/usr/bin/env python3
"""Independent reference values for StableLayers' flow-matching schedule and resolution buckets.

Written from the formulas of the public diffusers sources (read, not copied; Apache-2.0):
  - src/diffusers/pipelines/qwenimage/pipeline_qwenimage_layered.py (huggingface/diffusers @ 071190da):
      * calculate_dimensions(target_area, ratio): width = sqrt(area * ratio), height = width / ratio,
        each rounded with Python's round() (half to even) to a multiple of 32, then floored to a
        multiple of vae_scale_factor * 2 = 16 in __call__.
      * __call__ step 5: sigmas = np.linspace(1.0, 0, steps + 1)[:-1];
        mu = (image_latents.shape[1] / (256 * 256 / 16 / 16)) ** 0.5, i.e. sqrt(condition_tokens / 256)
        (NOT calculate_shift's linear interpolation, which the file defines but does not use).
  - src/diffusers/schedulers/scheduling_flow_match_euler_discrete.py, set_timesteps():
      1. custom sigmas cast to float32;
      2. use_dynamic_shifting: time_shift(mu, 1.0, sigmas), exponential type:
         e^mu / (e^mu + (1 / t - 1) ** 1.0);
      3. if shift_terminal: stretch_shift_to_terminal: one_minus = 1 - t,
         scale = one_minus[-1] / (1 - shift_terminal), t' = 1 - one_minus / scale;
      4. torch float32; timesteps = sigmas * 1000; a final 0 appended to sigmas.

The expected values are computed in float64 (what the C# FlowMatchScheduler does). The script also
runs diffusers' own float32 path and asserts both agree to 1e-6, so the C# tolerance of 1e-6 also
holds against diffusers' numbers.

Deliberate deviation (documented in FlowMatchScheduler.cs): with steps = 1 and a shift_terminal
diffusers divides 0 by 0 (the only sigma is 1, so one_minus[-1] = 0) and yields NaN; we leave the
schedule unstretched ([1, 0]). Those cases carry "diffusers_nan": true.

Regenerate (Debian 12: apt-get install python3-numpy):
    /usr/bin/python3 tests/golden/make_scheduler_golden.py tests/golden/scheduler_golden.json
"""
import json
import math
import sys

import numpy as np


def time_shift_exponential(mu, t):
    return math.exp(mu) / (math.exp(mu) + (1.0 / t - 1.0) ** 1.0)


def stretch_to_terminal(t, shift_terminal):
    one_minus = 1.0 - t
    scale = one_minus[-1] / (1.0 - shift_terminal)
    return 1.0 - one_minus / scale


def schedule_float64(steps, mu, shift_terminal):
    base = np.linspace(1.0, 0.0, steps + 1)[:-1].astype(np.float64)
    sigmas = time_shift_exponential(mu, base)
    nan = False
    if shift_terminal is not None:
        if 1.0 - sigmas[-1] == 0.0:
            nan = True  # diffusers: 0/0; we keep the unstretched schedule
        else:
            sigmas = stretch_to_terminal(sigmas, shift_terminal)
    return np.append(sigmas, 0.0), nan


def schedule_diffusers_float32(steps, mu, shift_terminal):
    sigmas = np.array(np.linspace(1.0, 0, steps + 1)[:-1]).astype(np.float32)
    sigmas = time_shift_exponential(mu, sigmas)
    if shift_terminal:
        with np.errstate(invalid="ignore", divide="ignore"):
            sigmas = stretch_to_terminal(sigmas, shift_terminal)
    sigmas = sigmas.astype(np.float32)
    return np.append(sigmas, np.float32(0.0))


def bucket(width, height, resolution, multiple=32, floor_multiple=16):
    ratio = width / height
    w = math.sqrt(resolution * resolution * ratio)
    h = w / ratio
    w = round(w / multiple) * multiple
    h = round(h / multiple) * multiple
    return w // floor_multiple * floor_multiple, h // floor_multiple * floor_multiple


def main(out_path):
    schedules = []
    worst = 0.0
    for steps in (1, 2, 10, 20, 50):
        for mu in (2.5, 4.0, 1.0):
            for shift_terminal in (None, 0.02):
                expected, nan = schedule_float64(steps, mu, shift_terminal)
                reference = schedule_diffusers_float32(steps, mu, shift_terminal)
                if not nan:
                    worst = max(worst, float(np.max(np.abs(reference.astype(np.float64) - expected))))
                else:
                    assert np.isnan(reference[0])
                schedules.append({
                    "steps": steps,
                    "mu": mu,
                    "shift_terminal": shift_terminal,
                    "diffusers_nan": nan,
                    "sigmas": [float(s) for s in expected],
                    "timesteps": [float(s) * 1000.0 for s in expected[:-1]],
                })
    assert worst < 1e-6, f"float64 and diffusers' float32 path differ by {worst}"

    buckets = []
    for (w, h) in ((640, 640), (1920, 1080), (500, 2000), (1080, 1920), (1000, 1000), (3000, 1000)):
        for res in (640, 1024):
            bw, bh = bucket(w, h, res)
            buckets.append({"width": w, "height": h, "resolution": res, "multiple": 32,
                            "bucket_width": bw, "bucket_height": bh})

    with open(out_path, "w") as f:
        json.dump({
            "source": "tests/golden/make_scheduler_golden.py",
            "float32_vs_float64_max_abs_diff": worst,
            "schedules": schedules,
            "buckets": buckets,
        }, f, indent=1)
        f.write("\n")
    print(f"wrote {len(schedules)} schedules, {len(buckets)} buckets; float32 path max diff {worst:.3g}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/golden/scheduler_golden.json")
