"""``ertrl-bench validate --dry-run``: build every component of every run and take one train
step and one evaluation step on tiny data, so a broken plugin fails in seconds, not after a
dataset build and hours of training.

The data are not the suite's datasets (those may take hours to build): a few dozen transitions
of uniform random actions per task, collected in the family's own envs. Train and context sizes
are shrunk to that; the components are built with the suite's resolved options.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ertrl_bench.config import RunSpec
from ertrl_bench.errors import ErtrlError


@dataclass
class DryRunResult:
    run: str  # method on env
    ok: bool
    message: str
    seconds: float


def random_data_problem(spec: RunSpec, tasks: int, steps: int, seed: int):
    """The run's family, its first ``tasks`` train tasks, ``steps`` random-action transitions
    of each (``conformance.random_task_data``) and the CPU ``Problem`` the run's components
    are built for on them: what trying the components costs without a dataset build.
    Returns ``(family, tasks, data, problem)``."""
    from ertrl_bench.conformance import random_task_data
    from ertrl_bench.problem import Problem, reference_stats
    from ertrl_bench.registry import create

    family = create("envs", spec.env)
    train = family.tasks("train")[:tasks]
    data = random_task_data(family, train, steps=steps, seed=seed)
    problem = Problem(
        family,
        data.data["obs"].shape[-1],
        data.data["actions"].shape[-1],
        spec.train.latent_dim,
        torch.device("cpu"),
        reference_stats(data, 0),  # a stand-in: a run uses task 19's data
        init=spec.train.init,
    )
    return family, train, data, problem


def dry_run_spec(spec: RunSpec, tasks: int = 4, steps: int = 24) -> None:
    """Build the run's family, encoder, encoder losses and backbone; one train step on tiny
    random-action data; one evaluation step (infer z, act, step the envs). Raises on failure."""
    from ertrl_bench.envs.base import make_checked_batch
    from ertrl_bench.step import train_step
    from ertrl_bench.training import build_agent, make_encoder_optimizer

    family, train, data, problem = random_data_problem(spec, tasks, steps, seed=spec.seed)
    rows = torch.arange(len(train))
    act_dim = problem.act_dim
    agent = build_agent(spec.method, problem)
    opt = make_encoder_optimizer(agent, spec.train.encoder_lr)
    ctx, rl = data.sample(rows, 8), data.sample(rows, 16)
    train_step(agent, opt, ctx, rl, lambda: data.sample(rows, 16), step=1)
    # one evaluation step: z from an offline context, deterministic actions, one env step
    with torch.no_grad():
        _, z = agent.infer(data.sample(rows, 8))
        env = make_checked_batch(family, train)
        obs = torch.as_tensor(env.reset(seed=0), dtype=torch.float32)
        a = agent.backbone.act(obs, z, deterministic=True)
        if tuple(a.shape) != (len(train), act_dim):
            raise ErtrlError(
                f"backbone {spec.method.backbone.type!r}: act() returned shape {tuple(a.shape)},"
                f" expected {(len(train), act_dim)}"
            )
        res = env.step(np.asarray(a.cpu().numpy(), dtype=np.float32))
        if hasattr(env, "close"):
            env.close()
        if not np.isfinite(res.reward).all():
            raise ErtrlError(f"env {spec.env.type!r}: a step returned a non-finite reward")


def dry_run(specs: list[RunSpec]) -> list[DryRunResult]:
    """``dry_run_spec`` once per distinct (env, method) of ``specs`` (seeds share components)."""
    seen: dict[str, RunSpec] = {}
    for spec in specs:
        key = spec.env.model_dump_json() + spec.method.model_dump_json()
        seen.setdefault(key, spec)
    out = []
    for spec in seen.values():
        t0 = time.perf_counter()
        label = f"{spec.method.name} on {spec.env.type}"
        try:
            torch.manual_seed(spec.seed)
            dry_run_spec(spec)
            out.append(DryRunResult(label, True, "ok", time.perf_counter() - t0))
        except ErtrlError as exc:
            out.append(DryRunResult(label, False, str(exc), time.perf_counter() - t0))
        except Exception as exc:  # a plugin's bug: report it as the run's, go on with the others
            msg = f"{type(exc).__name__}: {exc}"
            out.append(DryRunResult(label, False, msg, time.perf_counter() - t0))
    return out
