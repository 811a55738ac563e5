#!/usr/bin/env python3
"""Paired comparison of two `stable-layers eval` folders on the same designs (e.g. eval_tiny_base.sh's heldout-eval
for two models): mean difference new - old per metric with a 95% percentile bootstrap interval (2000 resamples of
designs, seed 0) and how many designs improved.
    python3 bench/experiments/paired_tiny_base.py OLD_EVAL_DIR NEW_EVAL_DIR
"""
import json
import random
import sys

HIGHER_IS_BETTER = {"layer0_ssim", "evenness"}


def samples(folder):
    with open(f"{folder}/metrics.json") as f:
        return {s["id"]: s for s in json.load(f)["samples"]}


def main(old_dir, new_dir):
    old, new = samples(old_dir), samples(new_dir)
    ids = sorted(set(old) & set(new))
    for key in ["best_match_l1", "recon_l1", "layer0_ssim", "layer0_inpaint_l1", "evenness", "bad_layers"]:
        d = [new[i][key] - old[i][key] for i in ids if old[i].get(key) is not None and new[i].get(key) is not None]
        if not d:
            continue
        rng = random.Random(0)
        means = sorted(sum(rng.choice(d) for _ in d) / len(d) for _ in range(2000))
        better = sum(1 for x in d if (x > 0 if key in HIGHER_IS_BETTER else x < 0))
        print(f"{key}: {sum(d) / len(d):+.4f} [{means[50]:+.4f}, {means[1949]:+.4f}], better in {better} of {len(d)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
