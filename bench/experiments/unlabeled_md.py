#!/usr/bin/env python3
"""The unlabeled-protocol section of docs/RESULTS.md (to stdout), from the folder unlabeled_protocol.sh filled.

Reads only what our commands wrote: OUT/paired.json (`eval --baseline`) and OUT/{base,tuned}/eval/metrics.json
(`eval --judge rubric`). Standard library only. results_md.py includes the same section.
    python3 bench/experiments/unlabeled_md.py OUT_DIR "COMMAND THAT FILLED OUT_DIR"
"""
import json
import sys
from pathlib import Path

ROWS = [
    ("bad_layers", "bad layers / decomposition", False),
    ("blank", "blank layers", False),
    ("glazed", "glazed layers", False),
    ("artifact", "artifact layers", False),
    ("degenerate_bg", "degenerate layer 0", False),
    ("evenness", "evenness", True),
    ("judge_background_inpainting", "layer-0 inpainting (judge's criterion)", True),
    ("recon_l1", "reconstruction L1", False),
    ("judge_reward", "judge reward", True),
]


def diff(d):
    lo, hi = d["ci95"]
    mark = ""
    if lo > 0 or hi < 0:
        mark = " (interval excludes 0)"
    return f"{d['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}]{mark}"


def section(out, command):
    out = Path(out)
    p = json.loads((out / "paired.json").read_text())
    lines = ["## Unlabeled protocol: real photos, requested N cycling 2..5 (the paper's Fig. 4)", ""]
    lines.append(f"Produced by `{command}`. {p['pairs']} real photos of `samples/photos-dev` (Debian packages, licences in "
                 "its LICENSES.md; no ground truth), each decomposed by the base and by base + tuned LoRA with the same seed "
                 "(Euler, 20 steps), the k-th photo in name order into N = 2 + (k mod 4) layers. Judge: the offline rubric, "
                 "each decomposition judged on its own (unrounded scores, as in the trainer's held-out evaluation); layer-0 "
                 "inpainting is its background-inpainting criterion (no ground-truth background exists). Change = tuned - base "
                 f"per photo, mean with a 95% percentile bootstrap interval over the {p['pairs']} pairs ({p['resamples']} resamples). "
                 "Definitions: docs/EVALUATION.md.")
    lines += ["", "| metric | base | tuned | tuned - base [95% CI] |", "|---|---|---|---|"]
    for key, label, higher in ROWS:
        d = p["all"].get(key)
        if d:
            lines.append(f"| {label}{' (higher is better)' if higher else ''} | {d['base']:.4f} | {d['tuned']:.4f} | {diff(d)} |")
    lines += ["", "By requested layer count (12 photos each):", "",
              "| N | bad layers base -> tuned [paired CI] | blank | glazed | evenness base -> tuned [paired CI] | recon L1 base -> tuned |",
              "|---|---|---|---|---|---|"]
    for n, s in sorted(p["by_layers"].items(), key=lambda kv: int(kv[0])):
        def bt(key, f="{:.3f}"):
            d = s.get(key)
            return "–" if not d else f"{f.format(d['base'])} -> {f.format(d['tuned'])}"
        bad, ev = s.get("bad_layers"), s.get("evenness")
        lines.append(f"| {n} | {bt('bad_layers')} {diff(bad) if bad else ''} | {bt('blank')} | {bt('glazed')} | "
                     f"{bt('evenness', '{:.4f}')} {diff(ev) if ev else ''} | {bt('recon_l1', '{:.4f}')} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(section(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else f"bench/experiments/unlabeled_protocol.sh ... {sys.argv[1]}"))
