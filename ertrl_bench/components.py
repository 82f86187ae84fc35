"""Every component kind's contract, in one place: what it is built from and what it must do.

A leaf module (no torch, no registry): plugins and the code that uses components import it
freely. A component is registered by a plugin (``ertrl_bench.hookspecs``) as
``register(name, factory, options_model)`` and built, and checked against these contracts, by
``ertrl_bench.registry.create(kind, component, problem)``. ONE factory signature:
``factory(options, problem)``; env families and executors exist *before* any problem (a problem
is made from a family's data; an executor runs many problems), so their factory is called as
``factory(options)`` (``WITHOUT_PROBLEM``).

Protocols (``typing.Protocol``; duck-typed, no base class to inherit):

* ``EnvFamily`` -- ``ertrl_bench.envs.base.EnvFamily`` (an ABC you subclass).
* ``Encoder`` -- ``encoder(x [M, N, K], mask [M, N] | None) -> (z_i [M, N, L], z [M, L])``, a
  ``torch.nn.Module``; ``K = problem.context_dim``, ``L = problem.latent_dim``.
* ``EncoderLoss`` (registered through ``register_encoder_losses``) -- receives a ``StepBatch``
  each train step: ``update(batch) -> logs`` trains its own networks on the *detached* batch,
  ``encoder_loss(batch) -> (scalar loss, logs)`` is added to the encoder objective.
* ``Backbone`` -- ``update(rl, z_q, z, sample_rl=None) -> logs`` and ``act(obs, z, det)``.
* Encoder losses and backbones also have ``state_dict()`` / ``load_state_dict(state)``:
  everything ``update`` changes (networks, targets, optimizers, numbers such as BRAC's alpha),
  saved in a run's checkpoints and restored on resume (``ertrl_bench.checkpoint``). A component
  without ``load_state_dict`` runs, but its runs write no checkpoints.
* Optional, any component: a classmethod ``ensemble(members, rng)`` stacks K seeds' instances
  into one whose tensors carry a leading K axis (``ertrl_bench.ensemble``; docs/plugins.md);
  without it a run's seeds train one at a time.
* ``Executor`` -- ``map(run_fn, specs)`` and ``parallel``.

docs/plugins.md walks through each with a template package.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ertrl_bench.errors import ErtrlError

if TYPE_CHECKING:  # torch loads with the components that use it, not with the contracts
    import torch

    from ertrl_bench.batch import Transitions

Logs = dict[str, Any]  # name -> float or 0-dim tensor; turned into numbers only when logged


class ComponentError(ErtrlError):
    """A component broke its contract (bad factory, missing method, wrong return value)."""


# ---------------------------------------------------------------------------------------------
# What an encoder loss receives


@dataclass(frozen=True)
class StepBatch:
    """Everything an encoder loss sees in one train step, for M tasks of the meta-batch.

    * ``ctx`` -- the context batch, ``[M, C, ...]`` (C = the family's context size); its
      ``mask`` is None in training (every transition valid) and ``[M, C]`` bool for padded
      online contexts. Use ``ctx.weights()`` and ``batch.masked_mean`` to average.
    * ``rl`` -- the RL batch the backbone trains on, ``[M, B, ...]`` (B = ``rl_batch``, 256),
      from the same task rows; never masked.
    * ``z_i [M, C, L]`` -- per-transition encodings of ``ctx`` (before pooling);
      ``z [M, L]`` -- the pooled task representation. In ``encoder_loss`` both carry gradient to
      the encoder; in ``update`` (``detached()``) neither does.
    * ``task_ids [M]`` -- each row's task (rows of the ``TaskDataset``).
    * ``encode(transitions) -> (z_i, z)`` -- the encoder itself, e.g. to encode a second view of
      a task (a fresh context, the RL batch) for a contrastive loss; with gradient in
      ``encoder_loss``, without in ``update``.
    """

    ctx: Transitions
    rl: Transitions
    z_i: torch.Tensor
    z: torch.Tensor
    encode: Callable[[Transitions], tuple[torch.Tensor, torch.Tensor]]

    @property
    def task_ids(self) -> torch.Tensor:
        return self.ctx.task_ids

    @property
    def num_tasks(self) -> int:
        return self.z.shape[0]

    @staticmethod
    def broadcast(z: torch.Tensor, n: int) -> torch.Tensor:
        """A task's ``z [M, L]`` repeated for each of its ``n`` transitions: ``[M, n, L]``."""
        return z[:, None, :].expand(-1, n, -1)

    def detached(self) -> StepBatch:
        """The batch ``update`` receives: encodings detached, ``encode`` without gradient."""
        import torch

        encode = self.encode

        def encode_no_grad(t: Transitions):
            with torch.no_grad():
                return encode(t)

        return replace(self, z_i=self.z_i.detach(), z=self.z.detach(), encode=encode_no_grad)


# ---------------------------------------------------------------------------------------------
# Protocols


@runtime_checkable
class Encoder(Protocol):
    """``factory(options, problem)``; a ``torch.nn.Module`` (its parameters are optimised)."""

    def __call__(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [M, N, problem.context_dim]``, ``mask [M, N]`` bool (True = valid) or None ->
        ``(z_i [M, N, L], z [M, L])``; ``z`` must ignore masked transitions."""
        ...

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...


@runtime_checkable
class EncoderLoss(Protocol):
    """``factory(options, problem)``: a term of the encoder objective."""

    def update(self, batch: StepBatch) -> Logs:
        """Train the loss's own networks (own optimizers) on ``batch`` (detached); return logs."""
        ...

    def encoder_loss(self, batch: StepBatch) -> tuple[torch.Tensor, Logs]:
        """A 0-dim loss, already weighted, whose gradient trains the encoder; and logs."""
        ...

    def joint_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters optimised together with the encoder by ``encoder_loss`` (usually [])."""
        ...

    def state_dict(self) -> dict:
        """Everything ``update`` changes (networks, optimizers): a checkpoint holds it."""
        ...

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned: the run continues as if never stopped."""
        ...


@runtime_checkable
class Backbone(Protocol):
    """``factory(options, problem)``: an offline RL agent conditioned on z."""

    def update(
        self,
        batch: Transitions,
        z_q: torch.Tensor,
        z: torch.Tensor,
        sample_rl: Callable[[], Transitions] | None = None,
    ) -> Logs:
        """One gradient step on ``batch`` ``[M, B, ...]`` for tasks with representation ``z [M, L]``.

        ``z`` is detached. ``z_q`` is the same values but may carry gradient to the encoder
        (Offline PEARL): use it, and only it, in the critic's loss. ``sample_rl()``, when given,
        returns a fresh RL batch of the same tasks (same rows, same z) for inner steps that
        draw their own data (BRAC's c-steps); without it, reuse ``batch``. The training loop
        passes it only to an ``update`` that accepts a ``sample_rl`` keyword.
        """
        ...

    def act(self, obs: torch.Tensor, z: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Actions ``[E, da]`` in [-1, 1] for observations ``[E, ds]`` and ``z [E, L]``."""
        ...

    def state_dict(self) -> dict:
        """Every network, target network, optimizer and evolving number (alpha, counters)."""
        ...

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned (a resumed run)."""
        ...


@runtime_checkable
class Executor(Protocol):
    """``factory(options)`` (no problem): runs many RunSpecs."""

    parallel: bool

    def map(self, run_fn: Callable, specs: Iterable) -> Iterator: ...


# the env family protocol is the ABC ``ertrl_bench.envs.base.EnvFamily``

REQUIRED = {
    "envs": ("tasks", "make", "make_batch", "spaces"),
    "encoders": ("__call__", "parameters"),
    "encoder_losses": ("update", "encoder_loss", "joint_parameters", "state_dict"),
    "backbones": ("update", "act", "state_dict"),
    "executors": ("map",),
}
WITHOUT_PROBLEM = ("envs", "executors")  # built before / outside any problem: factory(options)


def accepts_kwarg(fn: Callable, name: str) -> bool:
    """Whether ``fn`` can be called with keyword ``name`` (e.g. a backbone's ``sample_rl``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
