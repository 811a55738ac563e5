#!/usr/bin/env python3
"""Times LayerD's own Python evaluation (layerd.evaluation.LayersEditDist, max_edits=5) on one sample,
for comparison with the C# port (StableLayers.Metrics.LayerD.LayerDProtocol).

  # the deterministic 640x640 5-vs-5-layer sample that the C# test
  # LayerDProtocolTests.Evaluate_IsFastOn640x640FiveLayers builds (BenchmarkStacks)
  /usr/bin/python3 bench/layerd_python_timing.py --layerd-src /path/to/LayerD/src --synthetic

  # a layered folder (layer_*.png) against itself, resized to 640x640 with a derived prediction
  /usr/bin/python3 bench/layerd_python_timing.py --layerd-src /path/to/LayerD/src --sample /work/shared/data/real-psd-dev/groups

  # two layered folders as they are
  /usr/bin/python3 bench/layerd_python_timing.py --layerd-src /path/to/LayerD/src --pred PRED_DIR --gt GT_DIR

Prints seconds per evaluation (best and mean of --repeat runs) and the LayerD result.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from PIL import Image

SIZE = 640


def rect(x0: int, y0: int, x1: int, y1: int, rgba: tuple[int, int, int, int]) -> Image.Image:
    a = np.zeros((SIZE, SIZE, 4), np.uint8)
    a[y0:y1, x0:x1] = rgba
    return Image.fromarray(a, "RGBA")


def synthetic() -> tuple[list[Image.Image], list[Image.Image]]:
    """Mirrors BenchmarkStacks() in tests/StableLayers.Metrics.Tests/LayerDProtocolTests.cs."""
    gt = [Image.new("RGBA", (SIZE, SIZE), (240, 240, 230, 255))]
    rects = [(40, 60, 400, 420), (200, 100, 600, 400), (250, 250, 620, 620), (60, 300, 380, 600)]
    for k, r in enumerate(rects):
        gt.append(rect(*r, (50 * k, 200 - 40 * k, 30 + 50 * k, 255 - 30 * k)))
    shifted = np.zeros((SIZE, SIZE, 4), np.uint8)
    shifted[5:, 5:] = np.array(gt[3])[:-5, :-5]
    pred = [gt[0], Image.alpha_composite(gt[1], gt[2]), Image.fromarray(shifted, "RGBA"), gt[4],
            rect(100, 100, 500, 200, (255, 255, 0, 100))]
    return pred, gt


def load(folder: str) -> list[Image.Image]:
    names = sorted(n for n in os.listdir(folder) if n.startswith("layer_") and n.endswith(".png"))
    return [Image.open(os.path.join(folder, n)).convert("RGBA") for n in names]


def from_sample(folder: str) -> tuple[list[Image.Image], list[Image.Image]]:
    gt = [l.resize((SIZE, SIZE), Image.BOX) for l in load(folder)]
    pred = []
    for i, l in enumerate(gt):  # a derived prediction: top layer shifted by 5 px, foreground alpha halved
        a = np.array(l)
        if i == len(gt) - 1:
            s = np.zeros_like(a)
            s[5:, 5:] = a[:-5, :-5]
            a = s
        if i > 0:
            a[..., 3] = (a[..., 3].astype(np.int32) + 1) // 2
        pred.append(Image.fromarray(a, "RGBA"))
    return pred, gt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layerd-src", required=True, help="LayerD's src/ folder (contains layerd/)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--synthetic", action="store_true", help="the 640x640 5-layer sample of the C# test (default)")
    g.add_argument("--sample", help="a layered folder, resized to 640x640, against a derived prediction")
    g.add_argument("--pred", help="prediction layered folder (with --gt)")
    ap.add_argument("--gt", help="ground-truth layered folder (with --pred)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    sys.path.insert(0, os.path.abspath(args.layerd_src))
    from layerd.evaluation import LayersEditDist

    if args.pred:
        if not args.gt:
            ap.error("--pred needs --gt")
        pred, gt = load(args.pred), load(args.gt)
    elif args.sample:
        pred, gt = from_sample(args.sample)
    else:
        pred, gt = synthetic()

    evaluator = LayersEditDist(max_edits=5)
    times = []
    result = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        # LayersEditDist mutates nothing it is given, but pass fresh lists anyway
        result = evaluator(list(pred), list(gt))
        times.append(time.perf_counter() - t0)
    print(f"{pred[0].size[0]}x{pred[0].size[1]}, {len(pred)} pred vs {len(gt)} gt layers: "
          f"best {min(times):.3f} s, mean {np.mean(times):.3f} s per evaluation ({args.repeat} runs)")
    for r in result:
        print("  " + ", ".join(f"{k}={v:.6f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
