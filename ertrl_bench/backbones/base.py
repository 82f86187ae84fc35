"""The backbone protocol: an offline RL agent conditioned on the task representation z."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch

from ertrl_bench.batch import Transitions


@runtime_checkable
class Backbone(Protocol):
    def update(
        self,
        batch: Transitions,
        z_q: torch.Tensor,
        z: torch.Tensor,
        sample_rl: Callable[[], Transitions] | None = None,
    ) -> dict:
        """One gradient step on ``batch`` ``[M, B, ...]`` for tasks with representation ``z [M, L]``.

        ``z`` is detached. ``z_q`` is the same values but may carry gradient to the encoder
        (Offline PEARL): use it, and only it, in the critic's loss. ``sample_rl()``, when given,
        returns a fresh RL batch of the same tasks (same rows, same z) for inner steps that
        draw their own data (BRAC's c-steps); without it, reuse ``batch``.
        """
        ...

    def act(self, obs: torch.Tensor, z: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Actions ``[E, da]`` in [-1, 1] for observations ``[E, ds]`` and ``z [E, L]``."""
        ...

    def state_dict(self) -> dict: ...
