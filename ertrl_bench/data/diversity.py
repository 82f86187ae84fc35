"""Behavior-policy diversity of a dataset, measured when it is built and kept in its manifest.

``get_datasets`` records ``measure_diversity(data)`` (the defaults below, docs/paper.md "ours,
precisely"; K = the tier's ``diversity_samples``) as ``manifest.json``'s ``diversity`` once
every training task is built; runs copy it into their ``metrics.json`` and the report reads it
there: the report never opens the cache.
``ertrl-bench analyze wasserstein`` measures with other settings (states, samples, a single
checkpoint, exact W2) without recording them.

S shared states are drawn from the union of the training tasks' data; K actions per state are
sampled from each task's behavior policy -- by default the checkpoint mixture that produced the
data (``checkpoint="mixture"``), else one checkpoint (a step, ``first`` or ``last``). The value
is the mean pairwise distance, the floor two draws of the same policy
(``ertrl_bench.measures.wasserstein.diversity_with_floor``). A run's data quality is left out:
the diversity is of the full collection's policies.
"""

from __future__ import annotations

from ertrl_bench.data.family_data import FamilyData
from ertrl_bench.data.policies import load_behavior_policies, sample_mixture_actions, shared_states
from ertrl_bench.errors import ErtrlError

__all__ = ["DEFAULTS", "measure_diversity", "mixture_samples"]

#: the recorded measure's settings (``analyze wasserstein``'s defaults too)
DEFAULTS = {
    "states": 32,
    "samples": 4096,
    "checkpoint": "mixture",
    "seed": 0,
    "method": "sliced",
    "n_projections": 64,
}


def mixture_samples(data: FamilyData, samples: int) -> int:
    """K actually drawn per state from a checkpoint mixture: ``samples`` rounded up to a
    multiple of the checkpoints (the draw is stratified by checkpoint)."""
    n = len(data.tier.checkpoints)
    return n * -(-int(samples) // n)


def measure_diversity(
    data: FamilyData,
    states: int = DEFAULTS["states"],
    samples: int = DEFAULTS["samples"],
    checkpoint: int | str = DEFAULTS["checkpoint"],
    seed: int = DEFAULTS["seed"],
    method: str = DEFAULTS["method"],
    n_projections: int = DEFAULTS["n_projections"],
) -> dict:
    """Diversity of ``data``'s training tasks with its same-policy floor: the record ``{"w2",
    "floor", "floor_ratio", "method", "checkpoint", "checkpoints", "tasks", "states",
    "samples", "projections", "seed"}``. Raises ``ErtrlError`` when the data cannot give it
    (too few states; no policy weights, as with scripted experts)."""
    from ertrl_bench.measures.wasserstein import diversity_with_floor

    train = [t for t in data.tasks if t.split == "train"]
    try:
        shared = shared_states([data.arrays[t.key] for t in train], states, seed=seed)
    except ValueError as exc:
        raise ErtrlError(str(exc)) from None
    if checkpoint == "mixture":
        (draw_a, draw_b), steps = sample_mixture_actions(
            data.path, train, shared, samples, seeds=(seed, seed + 1_000_000)
        )
        label: int | str = "mixture"
    else:
        pols = load_behavior_policies(data.path, train, checkpoint)
        draw_a = pols.sample_actions(shared, samples, seed=seed)
        draw_b = pols.sample_actions(shared, samples, seed=seed + 1)
        steps, label = [pols.checkpoint], pols.checkpoint
    w2, floor = diversity_with_floor(
        draw_a, draw_b, method=method, n_projections=n_projections, seed=seed
    )
    return {
        "w2": w2,
        "floor": floor,
        "floor_ratio": floor / w2 if w2 > 0 else float("inf"),
        "method": method,
        "checkpoint": label,
        "checkpoints": steps,
        "tasks": len(train),
        "states": int(len(shared)),
        "samples": int(draw_a.shape[2]),
        "projections": n_projections if method == "sliced" else None,
        "seed": seed,
    }
