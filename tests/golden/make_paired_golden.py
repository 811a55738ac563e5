#!/usr/bin/env python3
"""Independent reference values for the paired comparison of eval --baseline (PairedReport, paired.json).

Builds a base and a tuned set of per-sample metrics (tuned listed in another order, a few nulls, one id on each side
only, one id at a different layer count), pairs them by id with numpy, and computes per metric and per layer count the
pair count, the two means, the mean difference (tuned - base) and a 95% percentile bootstrap interval of that mean
from scipy.stats.bootstrap with 200,000 resamples of the pairs (close to the exact bootstrap quantiles; the C# test
allows for the Monte Carlo error of its own 2,000 resamples). tests/StableLayers.Metrics.Tests/PairedComparisonTests.cs
reads the result.

Regenerate (Debian 12: apt-get install python3-numpy python3-scipy):
    /usr/bin/python3 tests/golden/make_paired_golden.py tests/golden/paired_golden.json
"""
import json
import sys

import numpy as np
from scipy import stats

rng = np.random.default_rng(12)
n = 40
ids = [f"img{i:02d}" for i in range(n)]
layers = [2 + i % 4 for i in range(n)]
base_recon = rng.uniform(0.05, 0.25, n)
tuned_recon = base_recon + rng.normal(-0.01, 0.004, n)
base_even = rng.uniform(0.2, 0.8, n)
tuned_even = base_even + rng.normal(0.02, 0.015, n)
base_bad = rng.integers(0, 4, n)
tuned_bad = np.maximum(0, base_bad - rng.integers(0, 2, n))
base_even_null = {3, 17}
tuned_even_null = {5, 11, 17, 30}


def sample(i, recon, even, bad, null, lay=None):
    return {"id": ids[i], "layers_pred": int(lay or layers[i]), "recon_l1": float(recon[i]),
            "evenness": None if i in null else float(even[i]), "bad_layers": int(bad[i])}


base = [sample(i, base_recon, base_even, base_bad, base_even_null) for i in range(n)]
tuned = [sample(i, tuned_recon, tuned_even, tuned_bad, tuned_even_null) for i in range(n)]
base.append({"id": "only-base", "layers_pred": 3, "recon_l1": 0.5, "evenness": 0.5, "bad_layers": 1})
tuned.append({"id": "only-tuned", "layers_pred": 3, "recon_l1": 0.1, "evenness": 0.1, "bad_layers": 0})
base.append({"id": "other-n", "layers_pred": 2, "recon_l1": 0.3, "evenness": 0.3, "bad_layers": 2})
tuned.append({"id": "other-n", "layers_pred": 4, "recon_l1": 0.9, "evenness": 0.9, "bad_layers": 3})
order = rng.permutation(len(tuned))
tuned = [tuned[k] for k in order]


def expected(group):
    out = {}
    b_by_id = {s["id"]: s for s in base}
    for metric in ("recon_l1", "evenness", "bad_layers"):
        b, t = [], []
        for s in tuned:
            o = b_by_id.get(s["id"])
            if o is None or o["layers_pred"] != s["layers_pred"] or (group is not None and o["layers_pred"] != group):
                continue
            if o[metric] is None or s[metric] is None:
                continue
            b.append(o[metric])
            t.append(s[metric])
        b, t = np.array(b, float), np.array(t, float)
        d = t - b
        res = stats.bootstrap((d,), np.mean, n_resamples=200_000, method="percentile", confidence_level=0.95,
                              random_state=np.random.default_rng(1))
        out[metric] = {"n": len(d), "base": b.mean(), "tuned": t.mean(), "diff": d.mean(),
                       "ci95": [res.confidence_interval.low, res.confidence_interval.high],
                       "sigma_mean": d.std() / np.sqrt(len(d))}
    return out


golden = {"base": base, "tuned": tuned, "pairs": n, "unpaired": ["only-base", "only-tuned", "other-n"],
          "all": expected(None), "by_layers": {str(k): expected(k) for k in (2, 3, 4, 5)}}
with open(sys.argv[1], "w") as f:
    json.dump(golden, f, indent=1)
print("wrote", sys.argv[1])
