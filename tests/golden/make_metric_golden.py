#!/usr/bin/env python3
"""Independent reference values for StableLayers' metrics (docs/EVALUATION.md), written from the
definitions with numpy, scipy (linear_sum_assignment, ndimage.label) and scikit-image
(structural_similarity). The C# tests (tests/StableLayers.Metrics.Tests/GoldenMetricTests.cs)
rebuild the same prediction variants and must match these numbers to 1e-4.

Regenerate (Debian 12: apt-get install python3-numpy python3-scipy python3-skimage python3-pil):
    /usr/bin/python3 tests/golden/make_metric_golden.py samples/real-psd-dev tests/golden/metrics_golden.json
"""
import json
import os
import sys

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from skimage.metrics import structural_similarity


def load_layers(sample_dir):
    with open(os.path.join(sample_dir, "layers.json")) as f:
        manifest = json.load(f)
    return [np.array(Image.open(os.path.join(sample_dir, e["file"])).convert("RGBA")) for e in manifest["layers"]]


def planes(layer):
    rgb = layer[..., :3].astype(np.float64) / 255.0
    a = layer[..., 3:4].astype(np.float64) / 255.0
    return rgb * a + (1 - a), rgb * a, a[..., 0]


def ssim(a, b):
    if min(a.shape[0], a.shape[1]) < 11:
        return None
    return float(structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=1.0, channel_axis=-1))


def flatten_on_white(layers):
    acc = np.zeros(layers[0].shape[:2] + (3,))
    alpha = np.zeros(layers[0].shape[:2])
    for l in layers:
        _, black, a = planes(l)
        acc = black + acc * (1 - a[..., None])
        alpha = a + alpha * (1 - a)
    return acc + (1 - alpha[..., None])


def coverage(l):
    return float((l[..., 3] >= 26).mean())


def is_speckle(l):
    a = l[..., 3].astype(np.float64) / 255.0
    mass = a.sum()
    if mass <= 0:
        return False
    lab, n = ndimage.label(l[..., 3] >= 26, structure=np.ones((3, 3)))
    limit = max(4, 0.0001 * a.size)
    speck_mass = 0.0
    for k in range(1, n + 1):
        m = lab == k
        if m.sum() < limit:
            speck_mass += a[m].sum()
    return bool(speck_mass > 0.25 * mass)


def quality(layers, input_rgb):
    n = len(layers)
    cov = [coverage(l) for l in layers]
    copy = []
    wash = []
    for k, l in enumerate(layers):
        covered = l[..., 3] >= 26
        mean_a = (l[..., 3][covered].astype(np.float64) / 255.0).mean() if covered.any() else 0.0
        wash.append(k > 0 and cov[k] > 0.5 and mean_a < 0.5)
        copy.append(cov[k] > 0.8 and ssim(planes(l)[0], input_rgb) is not None and ssim(planes(l)[0], input_rgb) > 0.9)
    lowest = copy.index(True) if any(copy) else -1
    blank = glazed = artifact = 0
    for k in range(1, n):
        b = cov[k] < 0.005
        g = wash[k] or (copy[k] and k > lowest)
        blank += b
        glazed += g
        artifact += (not b) and (not g) and is_speckle(layers[k])
    degenerate = int((layers[0][..., 3] >= 230).sum() < 0.95 * layers[0][..., 3].size)
    return dict(blank=int(blank), glazed=int(glazed), artifact=int(artifact), degenerate_bg=degenerate,
                bad_layers=int(blank + glazed + artifact + degenerate))


def evenness(layers):
    n = len(layers)
    if n < 2:
        return None
    t = np.ones(layers[0].shape[:2])
    v = np.zeros(n)
    for k in range(n - 1, -1, -1):
        a = layers[k][..., 3].astype(np.float64) / 255.0
        v[k] = (a * t).sum()
        t = t * (1 - a)
    if v.sum() <= 0:
        return None
    p = v / v.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / np.log(n))


def metrics(pred, gt, input_rgb):
    pw = [planes(l) for l in pred]
    gw = [planes(l) for l in gt]
    cost = np.array([[(np.abs(a[0] - b[0]).mean() + np.abs(a[1] - b[1]).mean()) / 2 for b in gw] for a in pw])
    rows, cols = linear_sum_assignment(cost)
    by_pred = [None] * len(pred)
    for r, c in zip(rows, cols):
        by_pred[r] = float(cost[r, c])
    fg = np.zeros(gt[0].shape[:2], dtype=bool)
    for l in gt[1:]:
        fg |= l[..., 3] >= 26
    inpaint = float(np.abs(pw[0][0] - gw[0][0])[fg].mean()) if fg.any() else None
    out = dict(best_match_l1=float(cost[rows, cols].mean()), best_match_l1_by_pred_index=by_pred,
               evenness=evenness(pred), layer0_ssim=ssim(pw[0][0], gw[0][0]), layer0_inpaint_l1=inpaint,
               recon_l1=float(np.abs(flatten_on_white(pred) - input_rgb).mean()))
    out.update(quality(pred, input_rgb))
    return out


# Prediction variants; each must be reproducible bit-for-bit in C# (GoldenMetricTests.Variant).
def variant(name, gt, composite):
    if name == "identity":
        return [l.copy() for l in gt]
    if name == "roll7":
        return [np.roll(l, 7, axis=1) for l in gt]
    if name == "half_alpha":
        out = [gt[0].copy()]
        for l in gt[1:]:
            m = l.copy()
            m[..., 3] = m[..., 3] // 2
            out.append(m)
        return out
    if name == "blank_last":
        return [l.copy() for l in gt[:-1]] + [np.zeros_like(gt[0])]
    if name == "copy_on_top":
        top = gt[0].copy()
        top[..., :3] = composite
        top[..., 3] = 255
        return [l.copy() for l in gt] + [top]
    if name == "transparent_bg":
        out = [l.copy() for l in gt]
        out[0][..., 3] = out[0][..., 3] // 3
        return out
    if name == "speckle":
        out = [l.copy() for l in gt]
        keep = np.zeros(gt[0].shape[:2], dtype=bool)
        keep[::3, ::3] = True
        out[1][..., 3] = np.where(keep, out[1][..., 3], 0)
        return out
    raise ValueError(name)


VARIANTS = ["identity", "roll7", "half_alpha", "blank_last", "copy_on_top", "transparent_bg", "speckle"]


def main():
    data, out_path = sys.argv[1], sys.argv[2]
    rng = np.random.RandomState(1234)
    assignment = []
    for shape in [(3, 3), (4, 6), (7, 2), (5, 5), (1, 4), (6, 6)]:
        for kind in ["uniform", "ties"]:
            c = rng.rand(*shape) if kind == "uniform" else rng.randint(0, 4, size=shape).astype(float)
            r, k = linear_sum_assignment(c)
            assignment.append(dict(cost=c.tolist(), total=float(c[r, k].sum()), pairs=[[int(a), int(b)] for a, b in zip(r, k)]))
    samples = []
    for sid in sorted(os.listdir(data)):
        d = os.path.join(data, sid)
        if sid.startswith("_") or not os.path.isdir(d):
            continue
        gt = load_layers(d)
        composite = np.array(Image.open(os.path.join(d, "composite.png")).convert("RGB"))
        input_rgb = composite.astype(np.float64) / 255.0
        for v in VARIANTS:
            samples.append(dict(sample=sid, variant=v, metrics=metrics(variant(v, gt, composite), gt, input_rgb)))
        print(sid, file=sys.stderr)
    with open(out_path, "w") as f:
        json.dump(dict(generator="tests/golden/make_metric_golden.py", numpy=np.__version__,
                       assignment=assignment, samples=samples), f, indent=1)


if __name__ == "__main__":
    main()
