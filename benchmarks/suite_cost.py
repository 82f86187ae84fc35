"""What one run of a long suite costs, from the phase timings of short runs (no multi-hour run).

    ertrl-bench run benchmarks/cost-small.yaml --jobs 2
    python benchmarks/suite_cost.py results/cost-small [suites/iid.yaml suites/ood.yaml]

The short runs (``benchmarks/cost-small.yaml``) train a few steps and evaluate once, with the
long suite's sizes. Their ``metrics.json`` ``timing_s`` gives, per family and method, the
seconds of a train step and of one evaluation of a set of splits; a run with the probe on
gives the probe's seconds. A full run of the long suite is then estimated as

    data + setup + steps x (train step) + evaluations x (one evaluation of its splits) + probe

and printed as a Markdown table (minutes per run, env x method) with the suite's total
CPU-hours. An estimate, not a measurement of a full run: it assumes a step costs the same at
step 5000 as over the first steps (the networks' sizes do not change), and an evaluation the
same whatever the policy (a policy that falls early makes episodes shorter but the transition
budget, hence the steps, is fixed per task).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from ertrl_bench.suite_loader import builtin_suite_path, load_suite


def _timings(results: Path):
    """Per-phase seconds of the finished runs: {(env, method, splits, probe): [timing_s, ...]}."""
    out: dict[tuple, list[dict]] = defaultdict(list)
    for metrics_path in sorted(results.glob("*/metrics.json")):
        try:
            spec = json.loads((metrics_path.parent / "spec.json").read_text())
            timing = json.loads(metrics_path.read_text())["timing_s"]
            steps = spec["train"]["iterations"] * spec["train"]["steps_per_iteration"]
            key = (
                spec["env"]["type"],
                spec["method"]["name"],
                tuple(spec["eval"]["splits"]),
                bool(spec["eval"]["probe"]["enabled"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(
                f"{metrics_path.parent}: unreadable spec.json / metrics.json ({exc!r});"
                " delete that run folder and run benchmarks/cost-small.yaml again"
            ) from None
        out[key].append({**timing, "steps": steps, "evals": _n_evals(spec["train"])})
    if not out:
        raise SystemExit(f"{results}: no finished run (run benchmarks/cost-small.yaml first)")
    return out


def _n_evals(train: dict) -> int:
    """Evaluations in a run: after every eval_every-th iteration and after the last."""
    n = train["iterations"]
    return sum(1 for it in range(n) if (it + 1) % train["eval_every"] == 0 or it + 1 == n)


def _mean(rows: list[dict], field: str, per: str | None = None) -> float:
    vals = [r[field] / (r[per] if per else 1.0) for r in rows]
    return float(np.mean(vals))


def phase_costs(results: Path):
    """Seconds per train step (env, method), per evaluation (env, splits), of the probe, and of
    data loading + setup (env): the measured quantities the estimate is made of."""
    timings = _timings(results)
    step, evaluation, probe, fixed = {}, defaultdict(list), [], defaultdict(list)
    for (env, method, splits, with_probe), rows in timings.items():
        if with_probe:
            probe.extend(r["probe"] for r in rows)
            continue
        step[env, method] = _mean(rows, "train", per="steps")
        evaluation[env, splits].append(_mean(rows, "eval", per="evals"))
        fixed[env].extend(r["data"] + r["setup"] for r in rows)
    if not probe:
        raise SystemExit(f"{results}: no run with the probe on (cost-small.yaml's last run)")
    return (
        step,
        {k: float(np.mean(v)) for k, v in evaluation.items()},
        float(np.mean(probe)),
        {k: float(np.mean(v)) for k, v in fixed.items()},
    )


def per_run_seconds(suite_path: Path, results: Path) -> tuple[list, dict[tuple[str, str], float]]:
    """The suite's runs and the estimated seconds of one run per (env, method)."""
    step, evaluation, probe, fixed = phase_costs(results)
    _, specs = load_suite(suite_path)
    per_run: dict[tuple[str, str], float] = {}
    for spec in specs:
        env, method = spec.env.type, spec.method.name
        splits = tuple(spec.eval.splits)
        if (env, method) not in step or (env, splits) not in evaluation:
            raise SystemExit(f"{results}: no timing for {method} on {env} with splits {splits}")
        steps = spec.train.iterations * spec.train.steps_per_iteration
        per_run[env, method] = (
            fixed[env]
            + steps * step[env, method]
            + _n_evals(spec.train.model_dump()) * evaluation[env, splits]
            + (probe if spec.eval.probe.enabled else 0.0)
        )
    return specs, per_run


def estimate(suite_path: Path, results: Path) -> str:
    """Markdown: estimated minutes per run of ``suite_path`` (env x method) and the total."""
    specs, per_run = per_run_seconds(suite_path, results)
    total = sum(per_run[s.env.type, s.method.name] for s in specs)
    envs = list(dict.fromkeys(e for e, _ in per_run))
    methods = list(dict.fromkeys(m for _, m in per_run))
    lines = [
        f"{suite_path}: {len(specs)} runs, estimated minutes per run on one core",
        "",
        "| env | " + " | ".join(methods) + " |",
        "|---" * (len(methods) + 1) + "|",
    ]
    for env in envs:
        cells = [f"{per_run[env, m] / 60:.0f}" for m in methods]
        lines.append(f"| {env} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"total {total / 3600:.0f} CPU-hours ({total / 3600 / 24:.1f} days on one core,"
        f" {total / 3600 / 48:.1f} on 2 cores one run per core; dataset builds not included)",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    results = Path(argv[0])
    suites = argv[1:] or ["iid", "ood"]
    step, evaluation, probe, fixed = phase_costs(results)
    print(f"measured in {results}: probe {probe:.0f} s; seconds per train step:")
    for (env, method), s in sorted(step.items()):
        print(f"  {env:16s} {method:14s} {s:.3f}")
    print("seconds per evaluation:")
    for (env, splits), s in sorted(evaluation.items()):
        print(f"  {env:16s} {'+'.join(splits):16s} {s:.1f}")
    for suite in suites:
        path = Path(suite) if Path(suite).is_file() else builtin_suite_path(suite)
        print()
        print(estimate(path, results))


if __name__ == "__main__":
    main(sys.argv[1:])
