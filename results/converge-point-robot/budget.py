"""Which budget settles? For each candidate budget B (in steps) and each method x column, the
score a run would get with B steps (the mean of its last 5 evaluations, B-4k..B), and two checks:

- trend: the change of the seed-mean curve across those 5 evaluations (least-squares slope x 4k
  steps), against the seed s.d. (ddof 1) of the window scores;
- drift: how far the seed-mean window score at B lies from the one at the longest budget (the
  mean of the last 5 evaluations of the whole run), against the same seed s.d.

A budget "settles" a cell when |trend| and |drift| are both at most the seed s.d.

    python results/converge-point-robot/budget.py results/converge-point-robot
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

COLUMNS = {
    "IID offline": "train/offline",
    "IID online": "train/online",
    "IID non_prior": "train/non_prior",
    "OOD offline": "moderate/offline",
    "OOD online": "moderate/online",
    "OOD non_prior": "moderate/non_prior",
}
BUDGETS = [5000, 10000, 15000, 20000, 25000]
WINDOW = 5

runs = defaultdict(list)
for p in sorted(Path(sys.argv[1]).glob("*/metrics.json")):
    runs[json.loads((p.parent / "spec.json").read_text())["method"]["name"]].append(
        json.loads(p.read_text())["curve"]
    )


def window(curve, key, budget):
    steps = np.array([c["step"] for c in curve])
    values = np.array([c[f"{key}/normalized"] for c in curve])
    keep = (steps <= budget) & (steps > budget - WINDOW * (steps[1] - steps[0]))
    return steps[keep], values[keep]


print("runs:", ", ".join(f"{m} x {len(c)}" for m, c in runs.items()))
print("| method | column | " + " | ".join(f"{b // 1000}k" for b in BUDGETS) + " | last |")
print("|---" * (len(BUDGETS) + 3) + "|")
verdict = {b: True for b in BUDGETS}
for method, curves in runs.items():
    final = max(c[-1]["step"] for c in curves)
    for name, key in COLUMNS.items():
        cells = []
        last = np.array([window(c, key, final)[1].mean() for c in curves]).mean()
        for b in BUDGETS:
            per_seed = [window(c, key, b) for c in curves]
            scores = np.array([v.mean() for _, v in per_seed])
            sd = scores.std(ddof=1) if len(scores) > 1 else float("nan")
            steps = per_seed[0][0]
            mean_curve = np.mean([v for _, v in per_seed], axis=0)
            trend = np.polyfit(steps, mean_curve, 1)[0] * (steps[-1] - steps[0])
            drift = scores.mean() - last
            ok = abs(trend) <= sd and abs(drift) <= sd
            verdict[b] &= bool(ok)
            cells.append(f"{scores.mean():.1f} ±{sd:.1f} ({trend:+.1f}, {drift:+.1f}){'' if ok else ' ✗'}")
        print(f"| {method} | {name} | " + " | ".join(cells) + f" | {last:.1f} |")
print()
print("Each cell: seed-mean score with B steps ± seed s.d. (ddof 1) (trend across the window,")
print("drift from the last window); ✗ = |trend| or |drift| above the seed s.d.")
print("budgets that settle every cell:", [b for b, ok in verdict.items() if ok] or "none")
