#!/usr/bin/env python3
"""Reference vectors for abtest's heterogeneous treatment effects (hte_test.go).

Writes hte_case.csv (three variants in five markets, effects planted in some
markets) and hte_reference.json: per market and treatment, Welch's lift,
interval and p-value (SciPy), the Benjamini-Hochberg adjusted p-values over
every market x treatment (statsmodels' multipletests, "fdr_bh"), and per
treatment Cochran's Q with its chi-square p-value (SciPy) and I^2.

Run from this folder (Debian: apt-get install python3-scipy python3-statsmodels):
    python3 hte_reference.py
"""
import csv
import json
import math

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.multitest import multipletests

ALPHA = 0.05
MARKETS = ["BR", "GB", "IN", "JP", "US"]
VARIANTS = ["A", "B", "C"]
EFFECTS = {"B": {"BR": 0.4, "GB": 0.05}, "C": {"IN": -0.3}}

rng = np.random.default_rng(20261207)
data = {}
with open("hte_case.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["unit", "variant", "market", "watch"])
    unit = 0
    for i, m in enumerate(MARKETS):
        for v in VARIANTS:
            n = int(rng.integers(80, 200))
            y = rng.normal(5 + 0.1 * i, 1 + 0.2 * i, n) + EFFECTS.get(v, {}).get(m, 0.0)
            data[(m, v)] = y
            for x in y:
                w.writerow([f"u{unit}", v, m, repr(float(x))])
                unit += 1

segments = []
for m in MARKETS:
    a = data[(m, "A")]
    for v in VARIANTS[1:]:
        b = data[(m, v)]
        res = stats.ttest_ind(b, a, equal_var=False)
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        se = math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
        lift = float(b.mean() - a.mean())
        q = float(stats.t.ppf(1 - ALPHA / 2, df))
        segments.append({"value": m, "variant": v, "lift": lift, "ci_low": lift - q * se,
                         "ci_high": lift + q * se, "p_value": float(res.pvalue), "se": se})
adjusted = multipletests([s["p_value"] for s in segments], method="fdr_bh")[1]
for s, p in zip(segments, adjusted):
    s["p_adjusted"] = float(p)

qs = []
for v in VARIANTS[1:]:
    d = np.array([s["lift"] for s in segments if s["variant"] == v])
    wt = np.array([1 / s["se"] ** 2 for s in segments if s["variant"] == v])
    pooled = float((wt * d).sum() / wt.sum())
    q = float((wt * (d - pooled) ** 2).sum())
    k = len(d) - 1
    qs.append({"variant": v, "q": q, "df": k, "p_value": float(stats.chi2.sf(q, k)),
               "i2": max(0.0, (q - k) / q) if q > 0 else 0.0, "pooled": pooled})

with open("hte_reference.json", "w") as f:
    json.dump({"note": f"hte_reference.py with SciPy {scipy.__version__}, statsmodels {statsmodels.__version__}",
               "alpha": ALPHA, "segments": segments, "q": qs}, f, indent=1)
    f.write("\n")
