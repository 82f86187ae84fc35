"""Do the runs whose BRAC alpha climbed (the clamp trap) score lower? (issue 26, item 2)

Usage (from the repository root; reads only the committed run folders)::

    python results/repro-point-robot/trap_vs_score.py [RESULTS_DIR]

A run "climbed" when its ``brac/alpha`` is still at least 100 at the end of training, far above
the 3.6-5.6 where it settles in the other runs: it was scored while in the trap. In this study those
runs end at 405-2000 and every other run at 63 or less (two climbed and came back down: 475 and
260 at their peak, under 6 at the end), so any threshold between 63 and 405 gives the same split.
Per column (split x context protocol), it prints each method's mean
score of climbing and other runs and, for the methods that have both, the mean of the within-method
differences, with a two-sided p-value from a permutation test that shuffles the climbed label
within each method (20 000 draws, fixed seed): a method's own level never enters the difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

THRESHOLD = 100.0
COLUMNS = [(s, p) for s in ("train", "moderate") for p in ("offline", "online", "non_prior")]
NAMES = {"train": "IID", "moderate": "OOD"}


def load(results: Path) -> dict[str, list[tuple[bool, dict]]]:
    runs: dict[str, list[tuple[bool, dict]]] = {}
    for metrics_file in sorted(results.glob("*/metrics.json")):
        m = json.loads(metrics_file.read_text())
        records = [json.loads(line) for line in open(metrics_file.parent / "log.jsonl")]
        alphas = [r["brac/alpha"] for r in records if "brac/alpha" in r]
        method = m["method"] if isinstance(m["method"], str) else m["method"]["name"]
        scores = {c: m["final"][c[0]][c[1]]["normalized"] for c in COLUMNS}
        runs.setdefault(method, []).append((bool(alphas) and alphas[-1] >= THRESHOLD, scores))
    return runs


def within_method_gap(groups: list[tuple[np.ndarray, np.ndarray]], rng, draws=20_000):
    """Mean over methods of (mean climbed - mean other), its permutation p-value and the draws."""

    def stat(labelled):
        return np.mean([x[lab].mean() - x[~lab].mean() for x, lab in labelled])

    observed = stat(groups)
    null = np.empty(draws)
    for i in range(draws):
        null[i] = stat([(x, rng.permutation(lab)) for x, lab in groups])
    return observed, float(np.mean(np.abs(null) >= abs(observed) - 1e-12)), draws


def main(results: Path) -> None:
    runs = load(results)
    rng = np.random.default_rng(0)
    print(
        f"runs: {sum(len(v) for v in runs.values())}; climbed (alpha at the end >= {THRESHOLD:g}): "
        + ", ".join(f"{k} {sum(c for c, _ in v)}/{len(v)}" for k, v in runs.items())
    )
    print(
        "| column | "
        + " | ".join(f"{k} climbed / other" for k in runs)
        + " | within-method gap | p |"
    )
    print("|---" * (len(runs) + 3) + "|")
    for col in COLUMNS:
        cells, groups = [], []
        for rows in runs.values():
            lab = np.array([c for c, _ in rows])
            x = np.array([s[col] for _, s in rows])
            hi = f"{x[lab].mean():.1f}" if lab.any() else "—"
            lo = f"{x[~lab].mean():.1f}" if (~lab).any() else "—"
            cells.append(f"{hi} / {lo}")
            if lab.any() and (~lab).any():
                groups.append((x, lab))
        gap, p, draws = within_method_gap(groups, rng)
        p_text = f"{p:.2g}" if p > 0 else f"< {1 / draws:.0e}"
        print(f"| {NAMES[col[0]]} {col[1]} | " + " | ".join(cells) + f" | {gap:+.1f} | {p_text} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
