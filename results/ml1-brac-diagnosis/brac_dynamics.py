"""BRAC's dynamics per run of the ML1 diagnosis (and of converge-ml1's finished runs).

Usage (from the repository root; reads only committed run folders)::

    python results/ml1-brac-diagnosis/brac_dynamics.py [RUN_FOLDER_PARENT ...]

Per run: the share of the actor's log-std outputs outside BRAC's clamp (``brac/log_std_at_clamp``)
at step 50 and averaged from step 1000 on, alpha at the last logged step, the mean divergence
estimate over the last 1000 steps (BRAC's target: 0.05), and the ``iid`` non-prior normalized
return and success rate (%) at each evaluation. IQL runs log none of BRAC's values ("-").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DEFAULT = ["results/ml1-brac-diagnosis", "results/converge-ml1"]


def row(run: Path) -> str:
    metrics = json.loads((run / "metrics.json").read_text())
    logs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    brac = [e for e in logs if "brac/alpha" in e]
    name = run.name.rsplit("-", 1)[0]
    if brac:
        last = brac[-1]["step"]
        first = brac[0]["brac/log_std_at_clamp"]
        late = [e["brac/log_std_at_clamp"] for e in brac if e["step"] >= 1000]
        tail = [e["brac/divergence"] for e in brac if e["step"] > last - 1000]
        dyn = (
            f"{first:.2f} | {sum(late) / len(late):.2f} | {brac[-1]['brac/alpha']:.0f} | "
            f"{sum(tail) / len(tail):.2f}"
        )
    else:
        dyn = "- | - | - | -"
    evals = ", ".join(
        f"{e['iid/non_prior/normalized']:.0f} ({100 * e['iid/non_prior/success']:.0f}%)"
        for e in metrics["curve"]
    )
    return f"| {name} | {dyn} | {evals} |"


def main(parents: list[str]) -> None:
    print(
        "| run | at clamp, step 50 | at clamp, mean from 1k | alpha, end | divergence, last 1k "
        "| iid non-prior normalized (success) at each evaluation |"
    )
    print("|---|---|---|---|---|---|")
    for parent in parents:
        for run in sorted(p.parent for p in Path(parent).glob("*/metrics.json")):
            print(row(run))


if __name__ == "__main__":
    main(sys.argv[1:] or DEFAULT)
