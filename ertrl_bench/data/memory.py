"""Grouped builds: train a family's behavior policies in task groups that fit a memory budget.

The batched SAC holds every task's replay buffer at once: Humanoid-Dir's paper tier (1M
transitions of a 376-d observation per task) needs ~3 GB per task, ~150 GB for its 50 tasks.
``plan_groups`` splits the tasks into groups trained one after the other, each within
``--max-memory``. Because every task draws from its own random streams (``data.rng``), a
grouped build gives the same bytes as a single group (tests/test_data_identity.py).

The estimate (``task_bytes``) counts, per task, in float32: the replay buffer, the actor and the
twin critics with their gradients, Adam moments and the target critic, the actor snapshots kept
until collection, the update's activations, the collected dataset held until it is written,
and a flat allowance per simulated env. It is an upper-bound style estimate, not a measurement.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence

from ertrl_bench.data.tiers import DataTier
from ertrl_bench.errors import ErtrlError

ENV_BYTES = 2 << 20  # per simulated env (MuJoCo model + data, generous)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_bytes(text: str | int | float) -> int:
    """``"16GiB"``, ``"500MB"``, ``"1.5 g"`` or a number of bytes -> bytes."""
    if isinstance(text, (int, float)):
        value, unit = float(text), ""
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
        if not m or m.group(2).lower() not in _UNITS:
            raise ErtrlError(
                f"memory size {text!r}: expected a number with an optional unit, e.g. 16GiB, 500MB"
            )
        value, unit = float(m.group(1)), m.group(2).lower()
    n = int(value * _UNITS[unit])
    if n <= 0:
        raise ErtrlError(f"memory size {text!r} must be positive")
    return n


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def _mlp_params(dims: Sequence[int]) -> int:
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:], strict=False))


def task_bytes(cfg: DataTier, obs_dim: int, act_dim: int, horizon: int) -> int:
    """Estimated peak memory of one task in a batched build (see the module docstring)."""
    f = 4  # float32
    hidden = list(cfg.sac_hidden)
    capacity = min(cfg.buffer_size, cfg.sac_steps)
    replay = capacity * (2 * obs_dim + act_dim + 2) * f
    p_actor = _mlp_params([obs_dim, *hidden, 2 * act_dim])
    p_critic = 2 * _mlp_params([obs_dim + act_dim, *hidden, 1])
    nets = (4 * p_actor + 5 * p_critic) * f  # param, grad, 2 Adam moments (+ target critic)
    snapshots = len(cfg.checkpoints) * p_actor * f
    # ~6 network passes per update (critic x2, target, actor x2, critic on new actions), each
    # keeping [batch, width] activations for backward, twice for the twin critics
    activations = 16 * cfg.sac_batch * (sum(hidden) + obs_dim + act_dim) * f
    k = cfg.trajectories_per_checkpoint
    row = (2 * obs_dim + act_dim + 8) * f  # obs, next_obs, actions, reward, flags, ids
    episodes = k * horizon * row  # one checkpoint's rollout arrays
    dataset = len(cfg.checkpoints) * k * horizon * row * 2  # kept per checkpoint + concatenated
    training = replay + nets + snapshots + activations + ENV_BYTES
    collection = snapshots + episodes + dataset + k * ENV_BYTES
    return int(max(training, collection))


def plan_groups(items: Sequence, per_task: int, budget: int | None) -> list[list]:
    """Split ``items`` (in order) into the fewest groups of near-equal size within ``budget``."""
    items = list(items)
    if not items:
        return []
    if budget is None:
        return [items]
    fit = budget // per_task
    if fit < 1:
        raise ErtrlError(
            f"one task needs about {format_bytes(per_task)} but the memory budget is"
            f" {format_bytes(budget)}: raise --max-memory, or shrink buffer_size / sac_hidden"
            " in the suite's data: section"
        )
    n_groups = math.ceil(len(items) / fit)
    size, extra = divmod(len(items), n_groups)
    groups, start = [], 0
    for g in range(n_groups):
        end = start + size + (1 if g < extra else 0)
        groups.append(items[start:end])
        start = end
    return groups


def default_budget(device) -> int | None:
    """80% of the free memory of ``device`` (GPU memory on CUDA, RAM otherwise); None if unknown."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.8)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * 0.8)
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.8)
    except (ValueError, OSError, AttributeError):
        return None
