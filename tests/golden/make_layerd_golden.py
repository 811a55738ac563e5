#!/usr/bin/env python3
"""Golden values for the LayerD evaluation protocol (docs/EVALUATION.md, metric 2).

Runs LayerD's OWN evaluation code (cyberagentailab/LayerD, src/layerd/evaluation/ and
layerd.data.crello.group_top_layers_indices) on small deterministic cases derived from the
real-psd-dev samples, and writes

  tests/golden/layerd_cases/<sample>/*.png   the (downscaled) ground-truth layers and the derived
                                             "prediction" layers, 8-bit RGBA PNGs
  tests/golden/layerd_cases/pil_alpha_composite.png
                                             PIL Image.alpha_composite(dst, src) over all 256x256
                                             (dst alpha, src alpha) pairs; dst/src are given by the
                                             integer formula in alpha_composite_inputs() below
  tests/golden/layerd_protocol.json          per case: file lists, LayerD's groups, its raw
                                             per-edit results and the values at edit levels 0..5
                                             (last value carried forward), plus
                                             LayersEditDist.aggregate over all evaluated cases

The C# test (tests/StableLayers.Metrics.Tests/LayerDProtocolTests.cs) reads the PNGs listed in
the JSON, so the derivations below need not be reproduced in C#.

Regenerate (LayerD's src folder must contain layerd/evaluation and layerd/data/crello.py; modules
that the evaluation imports but never uses - layerd.data.renderer, layerd.models.helpers,
layerd.models.inpaint - may be stubs):

  /usr/bin/python3 tests/golden/make_layerd_golden.py \
      --layerd-src /path/to/LayerD/src \
      --data /work/shared/data/real-psd-dev \
      --out tests/golden

Needs numpy, Pillow and scikit-image (LayerD's metrics module imports it). The values written
were produced with Pillow 9.4.0 and numpy 1.24.2 (Debian python3-pil / python3-numpy).
The sample selection mirrors LayerD's tools/evaluate.py: a pair is skipped (null) when either side
has fewer than 2 layer files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from functools import reduce

import numpy as np
from PIL import Image

MAX_SIDE = 128  # long side of the downscaled samples (keeps the PNGs small)
MAX_EDITS = 5


def load_layers(sample_dir: str) -> list[Image.Image]:
    names = sorted(n for n in os.listdir(sample_dir) if n.startswith("layer_") and n.endswith(".png"))
    return [Image.open(os.path.join(sample_dir, n)).convert("RGBA") for n in names]


def downscale(layers: list[Image.Image]) -> list[Image.Image]:
    w, h = layers[0].size
    s = min(1.0, MAX_SIDE / max(w, h))
    if s >= 1.0:
        return [l.copy() for l in layers]
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return [l.resize(size, Image.BOX) for l in layers]


def arr(img: Image.Image) -> np.ndarray:
    return np.array(img, dtype=np.uint8)


def img(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(a.astype(np.uint8)), "RGBA")


def derive_cases(gt: list[Image.Image], seed: int) -> dict[str, list[Image.Image]]:
    """Deterministic 'predictions' derived from a ground-truth stack (bottom first)."""
    n = len(gt)
    w, h = gt[0].size
    cases: dict[str, list[Image.Image]] = {"identical": list(gt)}

    if n >= 3:  # foreground layers 1..n-1 merged pairwise: (1,2), (3,4), ...
        merged = [gt[0]]
        k = 1
        while k < n:
            merged.append(Image.alpha_composite(gt[k], gt[k + 1]) if k + 1 < n else gt[k])
            k += 2
        cases["merge_pairs"] = merged

    # top layer shifted right 3 px and down 2 px (transparent fill)
    top = arr(gt[-1])
    shifted = np.zeros_like(top)
    shifted[2:, 3:] = top[:-2, :-3]
    cases["shift_top"] = list(gt[:-1]) + [img(shifted)]

    # foreground alpha scaled to 50% (rounded half up), colours kept
    half = []
    for i, l in enumerate(gt):
        a = arr(l).copy()
        if i > 0:
            a[..., 3] = (a[..., 3].astype(np.int32) + 1) // 2
        half.append(img(a))
    cases["alpha_half"] = half

    # faint noise (+-3) on every channel of every layer; alpha noise defeats LayerD's alpha>0 grouping
    rng = np.random.default_rng(seed)
    noisy = []
    for l in gt:
        a = arr(l).astype(np.int32) + rng.integers(-3, 4, size=(h, w, 4))
        noisy.append(img(np.clip(a, 0, 255)))
    cases["noise"] = noisy

    cases["reversed"] = list(gt[::-1])

    # a blank layer (alpha 0, colour red) just above the background
    blank = Image.new("RGBA", (w, h), (255, 0, 0, 0))
    cases["blank_extra"] = [gt[0], blank] + list(gt[1:])

    # background + all foreground merged into one layer
    if n >= 2:
        cases["two_layer"] = [gt[0], reduce(Image.alpha_composite, gt[1:])]

    # top layer split into left / right halves (two layers)
    t = arr(gt[-1])
    left, right = t.copy(), t.copy()
    left[:, w // 2 :] = 0
    right[:, : w // 2] = 0
    cases["split_top"] = list(gt[:-1]) + [img(left), img(right)]

    # the top layer missing
    cases["drop_top"] = list(gt[:-1])

    # a single flattened layer (skipped by LayerD's tools/evaluate.py -> null)
    cases["single"] = [reduce(Image.alpha_composite, gt)]
    return cases


def swapped_cases(cases: dict[str, list[Image.Image]]) -> dict[str, list[Image.Image]]:
    """Cases where the ground truth is the derived stack and the prediction the original one
    (exercises merges on the prediction side)."""
    return {"gt_" + k: cases[k] for k in ("two_layer", "noise", "reversed", "merge_pairs") if k in cases}


def alpha_composite_inputs() -> tuple[np.ndarray, np.ndarray]:
    """256x256 dst/src: row y = dst alpha, column x = src alpha, colours from an integer hash."""
    y, x = np.mgrid[0:256, 0:256].astype(np.int64)
    dst = np.zeros((256, 256, 4), np.int64)
    src = np.zeros((256, 256, 4), np.int64)
    for c in range(3):
        dst[..., c] = (x * 37 + y * 11 + c * 101) % 256
        src[..., c] = (x * 13 + y * 29 + c * 53 + 7) % 256
    dst[..., 3] = y
    src[..., 3] = x
    return dst.astype(np.uint8), src.astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layerd-src", required=True, help="LayerD's src/ folder (contains layerd/)")
    ap.add_argument("--data", required=True, help="real-psd-dev folder (layered folders)")
    ap.add_argument("--out", required=True, help="tests/golden")
    args = ap.parse_args()

    sys.path.insert(0, os.path.abspath(args.layerd_src))
    from layerd.data.crello import group_top_layers_indices  # noqa: E402
    from layerd.evaluation import LayersEditDist  # noqa: E402

    import PIL

    cases_root = os.path.join(args.out, "layerd_cases")
    os.makedirs(cases_root, exist_ok=True)

    dst, src = alpha_composite_inputs()
    Image.alpha_composite(img(dst), img(src)).save(os.path.join(cases_root, "pil_alpha_composite.png"))

    samples = sorted(d for d in os.listdir(args.data) if not d.startswith("_") and os.path.isdir(os.path.join(args.data, d)))
    entries = []
    all_results = []
    for si, sample in enumerate(samples):
        gt = downscale(load_layers(os.path.join(args.data, sample)))
        sdir = os.path.join(cases_root, sample)
        os.makedirs(sdir, exist_ok=True)
        saved: dict[int, str] = {}

        def save(im: Image.Image, name: str) -> str:
            key = id(im)
            if key not in saved:
                im.save(os.path.join(sdir, name + ".png"))
                saved[key] = f"{sample}/{name}.png"
            return saved[key]

        gt_files = [save(l, f"gt_{i:02d}") for i, l in enumerate(gt)]
        derived = derive_cases(gt, seed=1000 + si)
        pairs = [(case, [save(l, f"{case}_{i:02d}") for i, l in enumerate(pred)], gt_files)
                 for case, pred in derived.items()]
        by_case = {case: files for case, files, _ in pairs}
        pairs += [(case, gt_files, by_case[case[3:]]) for case in swapped_cases(derived)]
        for case, pred_files, case_gt_files in pairs:
            entry = {"sample": sample, "case": case, "width": gt[0].size[0], "height": gt[0].size[1],
                     "pred": pred_files, "gt": case_gt_files}
            # reload from the PNGs, exactly what the C# side sees
            pred_l = [Image.open(os.path.join(cases_root, f)).convert("RGBA") for f in pred_files]
            gt_l = [Image.open(os.path.join(cases_root, f)).convert("RGBA") for f in case_gt_files]
            entry["pred_groups"] = group_top_layers_indices(np.array([np.array(l.getchannel("A")) for l in pred_l]))
            entry["gt_groups"] = group_top_layers_indices(np.array([np.array(l.getchannel("A")) for l in gt_l]))
            if len(pred_l) < 2 or len(gt_l) < 2:  # tools/evaluate.py skips these samples
                entry["result"] = None
            else:
                raw = LayersEditDist(max_edits=MAX_EDITS)(pred_l, gt_l)
                all_results.append(raw)
                levels = [raw[min(k, len(raw) - 1)] for k in range(MAX_EDITS + 1)]
                entry["result"] = {
                    "edits": len(raw) - 1,
                    "raw": [{k: float(v) for k, v in r.items()} for r in raw],
                    "rgb_l1": [float(r["rgb_l1"]) for r in levels],
                    "alpha_iou": [float(r["alpha_iou"]) for r in levels],
                    "cost": [float(r["cost"]) for r in levels],
                }
            entries.append(entry)
            print(f"{sample:18s} {case:15s} pred={len(pred_files)} gt={len(case_gt_files)} "
                  + ("null" if entry["result"] is None else
                     f"edits={entry['result']['edits']} l1={entry['result']['rgb_l1'][0]:.4f} iou={entry['result']['alpha_iou'][0]:.4f}"))

    agg = [{k: float(v) for k, v in a.items()} for a in LayersEditDist.aggregate(all_results)]
    doc = {
        "generator": "tests/golden/make_layerd_golden.py",
        "reference": "cyberagentailab/LayerD src/layerd/evaluation (LayersEditDist, max_edits=5) + layerd.data.crello.group_top_layers_indices",
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "max_edits": MAX_EDITS,
        "max_side": MAX_SIDE,
        "cases": entries,
        "aggregate": agg,
    }
    with open(os.path.join(args.out, "layerd_protocol.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
