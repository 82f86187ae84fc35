"""The window tables of NOTES.md: per run (FOCAL, then ER-TRL), the mean normalized return over
tasks of its evaluation at 2k steps, its averages over 5-10k, 10-20k and 20-30k, and the s.d.
(ddof 1) of its last 5 evaluations; one cell lists the seeds in order.

    python results/converge-point-robot/windows.py results/converge-point-robot
"""

import json
import sys
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
WINDOWS = {
    "at 2k": lambda v, st: v[st == 2000][0],
    "5-10k": lambda v, st: v[(st > 5000) & (st <= 10000)].mean(),
    "10-20k": lambda v, st: v[(st > 10000) & (st <= 20000)].mean(),
    "20-30k": lambda v, st: v[(st > 20000) & (st <= 30000)].mean(),
    "s.d. of the last 5": lambda v, st: v[-5:].std(ddof=1),
}


def table(curves: list[list[dict]]) -> None:
    print("| column | " + " | ".join(WINDOWS) + " |")
    print("|---" * (len(WINDOWS) + 1) + "|")
    for name, key in COLUMNS.items():
        cells = []
        for window in WINDOWS.values():
            values = []
            for curve in curves:
                v = np.array([c[f"{key}/normalized"] for c in curve])
                st = np.array([c["step"] for c in curve])
                values.append(f"{window(v, st):.1f}")
            cells.append(" / ".join(values))
        print(f"| {name} | " + " | ".join(cells) + " |")


for method in ("focal", "ertrl"):
    runs = sorted(Path(sys.argv[1]).glob(f"{method}-*/metrics.json"))
    print(f"\n{method}:", ", ".join(p.parent.name for p in runs))
    table([json.loads(p.read_text())["curve"] for p in runs])
