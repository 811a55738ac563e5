#!/usr/bin/env python3
"""Tables of `decompose --layers auto` from the JSON lines the benchmark's auto-layers mode wrote (stdout: markdown).

Per design: the true layer count, each candidate count's rubric reward, distinct-layer count, best-match and
reconstruction L1 against the ground truth. Every method's choice is recomputed here from those numbers (the rubric's
calibrated reward of a candidate does not depend on the other candidates, so a narrower range is a sub-selection):
judge = highest reward (ties to fewer layers), count = distinct layers at the range's maximum, clamped to the range.
Standard library only; 95% percentile bootstrap over designs (seeded, 2000 resamples), as results_md.py.
"""
import json
import random
import statistics
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
steps = rows[0]["steps"] if rows else None
hi = max(int(n) for n in rows[0]["per_n"])


def judge(r, lo, top):
    best = None
    for n in range(lo, top + 1):
        v = r["per_n"][str(n)]["reward"]
        if v is None:
            continue
        if best is None or v > best[1] + 1e-9:
            best = (n, v)
    return best[0]


def count(r, lo, top):
    return min(top, max(lo, r["per_n"][str(top)]["distinct"]))


METHODS = [
    ("auto: judge, range 2..%d" % hi, lambda r: judge(r, 2, hi)),
    ("auto: count, range 2..%d" % hi, lambda r: count(r, 2, hi)),
    ("auto: judge, default range 2..8", lambda r: judge(r, 2, 8)),
    ("auto: count, default range 2..8", lambda r: count(r, 2, 8)),
    ("true N (oracle)", lambda r: r["true_n"]),
    ("fixed N = 4", lambda r: 4),
]


def boot(values, resamples=2000):
    rng = random.Random(0)
    means = sorted(statistics.fmean(rng.choices(values, k=len(values))) for _ in range(resamples))
    return statistics.fmean(values), means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def fmt(t, f="{:.3f}", sign=False):
    m, lo, h = t
    f = f.replace("{:", "{:+") if sign else f
    return f"{f.format(m)} [{f.format(lo)}, {f.format(h)}]"


print(f"{len(rows)} designs (synth seed 1000, 64 px, true N = 2..{hi}: "
      + ", ".join(f"{n}: {sum(r['true_n'] == n for r in rows)}" for n in range(2, hi + 1))
      + f"), tiny base, {steps} Euler steps, design k with noise seed k; 95% bootstrap intervals over designs.\n")
def table(rows, methods):
    print("| method | chosen N within 1 of truth | exact | mean (chosen - true) | best-match L1 | paired vs true N | recon L1 | decompositions per image |")
    print("|---|---|---|---|---|---|---|---|")
    for name, pick in methods:
        ch = [pick(r) for r in rows]
        within = [1.0 if abs(c - r["true_n"]) <= 1 else 0.0 for c, r in zip(ch, rows)]
        exact = [1.0 if c == r["true_n"] else 0.0 for c, r in zip(ch, rows)]
        err = [c - r["true_n"] for c, r in zip(ch, rows)]
        l1 = [r["per_n"][str(c)]["best_match_l1"] for c, r in zip(ch, rows)]
        diff = [r["per_n"][str(c)]["best_match_l1"] - r["per_n"][str(r["true_n"])]["best_match_l1"] for c, r in zip(ch, rows)]
        recon = [r["per_n"][str(c)]["recon_l1"] for c, r in zip(ch, rows)]
        top = int(name.split("..")[1].split()[0]) if ".." in name else None
        cost = "1" if top is None else ("1-2" if "count" in name else str(top - 1))
        paired = "–" if name.startswith("true") else fmt(boot(diff), sign=True)
        print(f"| {name} | {fmt(boot(within), '{:.2f}')} | {statistics.fmean(exact):.2f} | {statistics.fmean(err):+.2f} | "
              f"{fmt(boot(l1))} | {paired} | {statistics.fmean(recon):.3f} | {cost} |")


table(rows, METHODS)
small = [r for r in rows if r["true_n"] <= 5]
if small:
    print(f"\nThe {len(small)} designs with true N <= 5 (the tiny base's training range), range 2..5:\n")
    table(small, [("auto: judge, range 2..5", lambda r: judge(r, 2, 5)), ("auto: count, range 2..5", lambda r: count(r, 2, 5)),
                  ("true N (oracle)", lambda r: r["true_n"]), ("fixed N = 4", lambda r: 4)])
print("\nMean chosen N by true N:\n")
print("| true N | n | " + " | ".join(n for n, _ in METHODS[:4]) + " |")
print("|---|---|" + "---|" * 4)
for t in range(2, hi + 1):
    rs = [r for r in rows if r["true_n"] == t]
    if rs:
        print(f"| {t} | {len(rs)} | " + " | ".join(f"{statistics.fmean(p(r) for r in rs):.1f}" for _, p in METHODS[:4]) + " |")

print("\nMean over designs at each candidate N (every design decomposed at every N):\n")
print("| N | rubric reward | distinct layers | best-match L1 | recon L1 | bad layers |")
print("|---|---|---|---|---|---|")
for n in range(2, hi + 1):
    p = [r["per_n"][str(n)] for r in rows]
    print(f"| {n} | {statistics.fmean(x['reward'] for x in p):.3f} | {statistics.fmean(x['distinct'] for x in p):.2f} | "
          f"{statistics.fmean(x['best_match_l1'] for x in p):.4f} | {statistics.fmean(x['recon_l1'] for x in p):.4f} | "
          f"{statistics.fmean(x['bad_layers'] for x in p):.2f} |")
