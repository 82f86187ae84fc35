"""The paper's scale: scores normalized with the ER-TRL authors' per-task constants.

Our normalized return uses our own behavior data's R_min / R_max per task; the paper's numbers
use the authors' (``authors_data/README.md`` says where they come from). The two differ as much
as the behavior data differ, so a paper number may only stand beside ours on the authors' scale.
This module maps our family, method and protocol names to the authors', converts a raw return,
reads the authors' published table numbers, and recovers our own per-task R_min / R_max from a
run's (return, normalized) pairs (normalized is linear in the return, so two distinct pairs of a
task fix its range) to say how expert our data is on their scale.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources

import numpy as np

__all__ = [
    "FAMILIES",
    "METHODS",
    "PROTOCOLS",
    "has_reference",
    "authors_range",
    "authors_normalized",
    "paper_number",
    "task_index",
    "recover_ranges",
    "BROKEN",
]

#: Our family name -> (the authors' env name in the normalizer, their table's display name).
FAMILIES = {
    "cheetah-vel": ("cheetah-vel-custom", "Cheetah-Vel"),
    "ant-dir": ("ant-dir-custom", "Ant-Dir"),
    "ant-goal": ("ant-goal-custom", "Ant-Goal"),
    "humanoid-dir": ("humanoid-dir-custom", "Humanoid-Dir"),
    "hopper-mass": ("hopper-mass", "Hopper-Mass"),
    "hopper-friction": ("hopper-friction", "Hopper-Friction"),
    "walker-mass": ("walker-mass", "Walker-Mass"),
    "walker-friction": ("walker-friction", "Walker-Friction"),
}
#: Our method name -> the authors' table column.
METHODS = {
    "offline_pearl": "OfflinePearl",
    "focal": "FOCAL",
    "csro": "CSRO",
    "unicorn": "UNICORN",
    "ertrl": "ER-TRL",
}
#: Our protocol name -> the authors' (non-prior is CSRO's protocol).
PROTOCOLS = {"offline": "offline", "online": "online", "non_prior": "nonprior"}
#: (family display name, "split/protocol") whose published numbers the authors' own data bug
#: broke (returns far below their R_min; ``authors_data/README.md``): never shown.
BROKEN = {("Cheetah-Vel", "extreme/offline")}


@cache
def _load(name: str) -> dict:
    path = resources.files("ertrl_bench.analysis") / "authors_data" / name
    return json.loads(path.read_text(encoding="utf-8"))


def has_reference(env: str) -> bool:
    """Whether the authors have a normalizer (and tables) for our family ``env``."""
    return env in FAMILIES


def task_index(task_key: str) -> int | None:
    """``"task-007"`` -> 7 (the grid index); anything else -> None."""
    head, _, num = task_key.rpartition("-")
    return int(num) if head == "task" and num.isdigit() else None


def authors_range(env: str, task_key: str) -> tuple[float, float] | None:
    """The authors' ``(R_min, R_max)`` of a task of ``env``; None without one (e.g. our off-grid
    ``iid`` tasks, index >= 40, or a family they did not run)."""
    if env not in FAMILIES:
        return None
    idx = task_index(task_key)
    pair = _load("normalizer-minmax.json")[FAMILIES[env][0]].get(str(idx))
    return (float(pair[0]), float(pair[1])) if pair else None


def authors_normalized(env: str, task_key: str, ret: float) -> float | None:
    """``100 (R - R_min) / (R_max - R_min)`` with the authors' constants, or None."""
    rng = authors_range(env, task_key)
    if rng is None or not np.isfinite(ret) or rng[1] <= rng[0]:
        return None
    return 100.0 * (ret - rng[0]) / (rng[1] - rng[0])


def paper_number(env: str, method: str, split: str, protocol: str) -> tuple[float, float] | None:
    """The authors' published ``(mean, std over 5 seeds, ddof 0)``, or None where they have
    none (or it is one of their ``BROKEN`` numbers)."""
    if env not in FAMILIES or method not in METHODS or protocol not in PROTOCOLS:
        return None
    name = FAMILIES[env][1]
    key = f"{split}/{PROTOCOLS[protocol]}"
    if (name, key) in BROKEN:
        return None
    pair = _load("results.json").get(name, {}).get(key, {}).get(METHODS[method])
    return (float(pair[0]), float(pair[1])) if pair else None


def recover_ranges(pairs: Mapping[str, Iterable[tuple[float, float]]]) -> dict[str, tuple]:
    """``{task: (R_min, R_max)}`` of our normalizer from ``{task: [(return, normalized), ...]}``.

    normalized = 100 (R - R_min) / (R_max - R_min) is a line in R; a least-squares fit through a
    task's pairs gives its slope and intercept. Tasks with fewer than two distinct returns are
    left out.
    """
    out = {}
    for task, values in pairs.items():
        arr = np.array(
            [(r, n) for r, n in values if np.isfinite(r) and np.isfinite(n)], dtype=float
        ).reshape(-1, 2)
        if len(arr) < 2 or np.ptp(arr[:, 0]) == 0:
            continue
        slope, intercept = np.polyfit(arr[:, 0], arr[:, 1], 1)
        if slope <= 0:
            continue
        r_min = -intercept / slope
        out[task] = (float(r_min), float(r_min + 100.0 / slope))
    return out
