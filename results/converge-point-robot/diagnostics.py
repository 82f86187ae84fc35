"""BRAC's alpha, Q loss and policy-to-data divergence per run (from each run's log.jsonl), beside
its IID / OOD offline curve: diagnostics.png, and the per-method means at 5k, 15k and 30k steps.

    python results/converge-point-robot/diagnostics.py results/converge-point-robot
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

KEYS = {"brac/alpha": "BRAC alpha", "brac/q_loss": "Q loss", "brac/divergence": "divergence"}
COLORS = {"focal": "tab:blue", "ertrl": "tab:red"}
root = Path(sys.argv[1])
fig, axes = plt.subplots(1, len(KEYS) + 2, figsize=(4 * (len(KEYS) + 2), 3.2))
at = {}
for run in sorted(root.glob("*/log.jsonl")):
    method = run.parent.name.split("-")[0]
    rows = [json.loads(line) for line in run.read_text().splitlines()]
    rows = [r for r in rows if "brac/alpha" in r]
    steps = np.array([r["step"] for r in rows])
    for ax, (key, title) in zip(axes, KEYS.items()):
        values = np.array([r[key] for r in rows])
        per_k = [values[(steps > k - 1000) & (steps <= k)].mean() for k in range(1000, 30001, 1000)]
        ax.plot(range(1000, 30001, 1000), per_k, color=COLORS[method], lw=1)
        ax.set_title(title)
        for k in (5000, 15000, 30000):
            at.setdefault((method, key, k), []).append(per_k[k // 1000 - 1])
    curve = json.loads((run.parent / "metrics.json").read_text())["curve"]
    for ax, split in zip(axes[len(KEYS) :], ("train", "moderate")):
        ax.plot(
            [c["step"] for c in curve],
            [c[f"{split}/offline/normalized"] for c in curve],
            color=COLORS[method],
            lw=1,
        )
        ax.set_title(f"{'IID' if split == 'train' else 'OOD'} offline (normalized)")
for ax in axes:
    ax.set_xlabel("gradient steps")
axes[0].plot([], [], color=COLORS["focal"], label="FOCAL")
axes[0].plot([], [], color=COLORS["ertrl"], label="ER-TRL")
axes[0].legend()
fig.tight_layout()
fig.savefig(root / "diagnostics.png", dpi=80)
print("| method | quantity | 1k steps ending at 5k | at 15k | at 30k |")
print("|---|---|---|---|---|")
for method in COLORS:
    for key, title in KEYS.items():
        cells = [" / ".join(f"{v:.3g}" for v in at[(method, key, k)]) for k in (5000, 15000, 30000)]
        print(f"| {method} | {title} | " + " | ".join(cells) + " |")
