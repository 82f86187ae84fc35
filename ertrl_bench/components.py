"""Every component kind's contract, in one place: what it is built from and what it must do.

A component is registered by a plugin (``ertrl_bench.hookspecs``) as ``register(name, factory,
options_model)`` and built by ``create(kind, component, problem)``, the one path every caller
uses (``training.build_agent``, ``runner.make_family``, ``validate --dry-run``...):

* the suite's ``params`` (already merged with the family's defaults, see
  ``EnvFamily.component_defaults``) are validated by the options model;
* ONE factory signature: ``factory(options, problem)``. Env families and executors exist
  *before* any problem (a problem is made from a family's data; an executor runs many problems),
  so they are built with ``problem=None`` and their factory is called as ``factory(options)``;
* a factory that raises, or returns an object without the kind's methods, is reported as one
  message naming the component and its plugin (``ComponentError``), not a traceback.

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
* ``Executor`` -- ``map(run_fn, specs)`` and ``parallel``.

docs/plugins.md walks through each with a template package.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ertrl_bench.errors import ErtrlError

if TYPE_CHECKING:  # torch loads with the components that use it, not with the contracts
    import torch

    from ertrl_bench.batch import Transitions
    from ertrl_bench.problem import Problem

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


# ---------------------------------------------------------------------------------------------
# The one construction path


def _label(kind: str, name: str, plugin: str) -> str:
    from ertrl_bench.plugins import SINGULAR

    return f"{SINGULAR[kind]} {name!r} (plugin {plugin})"


def resolve_options(kind: str, component, registry=None):
    """The validated options model of ``component`` (``{type, params}``), or None."""
    from pydantic import ValidationError

    from ertrl_bench.plugins import get_registry

    entry = (registry or get_registry()).get(kind, component.type)
    if entry.options is None:
        return None
    try:
        return entry.options.model_validate(component.params)
    except ValidationError as exc:
        from ertrl_bench.options import format_validation_error

        raise ComponentError(
            f"{_label(kind, component.type, entry.plugin)}: invalid params: "
            + "; ".join(format_validation_error(exc))
        ) from None


def create(kind: str, component, problem: Problem | None = None, registry=None):
    """Build ``component`` (a ``config.Component``) of ``kind`` for ``problem``.

    ``kind`` is a registry kind: envs | encoders | encoder_losses | backbones | executors.
    """
    from ertrl_bench.plugins import get_registry

    registry = registry or get_registry()
    entry = registry.get(kind, component.type)
    label = _label(kind, component.type, entry.plugin)
    options = resolve_options(kind, component, registry)
    try:
        obj = entry.factory(options) if kind in WITHOUT_PROBLEM else entry.factory(options, problem)
    except ErtrlError:
        raise
    except Exception as exc:
        signature = "factory(options)" if kind in WITHOUT_PROBLEM else "factory(options, problem)"
        raise ComponentError(
            f"{label}: building it failed with {type(exc).__name__}: {exc} (it is called as"
            f" {signature}; see docs/plugins.md)"
        ) from exc
    if kind == "envs" and hasattr(obj, "plugin"):
        with contextlib.suppress(AttributeError):  # named in its messages (EnvFamily.described)
            obj.plugin = entry.plugin
    missing = [m for m in REQUIRED.get(kind, ()) if not callable(getattr(obj, m, None))]
    if missing:
        raise ComponentError(
            f"{label}: the object its factory returned ({type(obj).__name__}) has no"
            f" {', '.join(missing)}; see ertrl_bench.components for the contract"
        )
    check_signatures(kind, obj, label)
    if kind == "backbones" and problem is not None:
        check_act(obj, problem, label)
    return obj


def _binds(fn: Callable, n_args: int) -> str | None:
    """None if ``fn`` can be called with ``n_args`` positional arguments, else its signature."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return None
    try:
        sig.bind(*([None] * n_args))
    except TypeError:
        return str(sig)
    return None


def check_signatures(kind: str, obj, label: str) -> None:
    """The contract's call signatures, checked when a component is built: a plugin written
    against an older contract fails here with the fix, not deep in a train step."""
    if kind == "encoders":
        import torch

        forward = obj.forward if isinstance(obj, torch.nn.Module) else obj
        sig = _binds(forward, 2)
        if sig is not None:
            raise ComponentError(
                f"{label}: forward{sig} does not take a `mask`; an encoder is called as"
                " encoder(x, mask), mask [M, N] bool (True = a real transition) or None. Add"
                " `mask=None` to forward and leave masked transitions out of z (padded online"
                " contexts have them); see plugins/ertrl-bench-attention and docs/plugins.md"
                ' "Encoder"'
            )
    if kind == "encoder_losses":
        for method in ("update", "encoder_loss"):
            sig = _binds(getattr(obj, method), 1)
            if sig is not None:
                raise ComponentError(
                    f"{label}: {method}{sig} is the old signature; {method} now takes one"
                    " argument, a StepBatch: update(batch) -> logs and encoder_loss(batch) ->"
                    " (loss, logs), reading batch.ctx, batch.z_i, batch.z, batch.task_ids (for"
                    " update(ctx, z_i, z): ctx = batch.ctx, z_i = batch.z_i, z = batch.z); see"
                    ' docs/plugins.md "What you receive: StepBatch"'
                )


def check_act(backbone, problem: Problem, label: str) -> None:
    """``act`` tried once when the backbone is built (2 zero observations, deterministic): a
    backbone that returns numpy or the wrong shape fails now, not after a training iteration.
    Deterministic actions draw no random numbers in the built-ins, so runs are unchanged."""
    import torch

    obs = torch.zeros(2, problem.obs_dim, device=problem.device)
    z = torch.zeros(2, problem.latent_dim, device=problem.device)
    try:
        with torch.no_grad():
            a = backbone.act(obs, z, deterministic=True)
    except Exception as exc:
        raise ComponentError(
            f"{label}: act(obs [2, {problem.obs_dim}], z [2, {problem.latent_dim}],"
            f" deterministic=True) raised {type(exc).__name__}: {exc}; act takes torch tensors"
            " on the problem's device and returns actions [E, act_dim] (see"
            ' docs/plugins.md "Backbone")'
        ) from exc
    if not isinstance(a, torch.Tensor):
        raise ComponentError(
            f"{label}: act() returned a {type(a).__module__}.{type(a).__name__}, not a"
            " torch.Tensor; return the actions as a tensor [E, act_dim] in [-1, 1] on the"
            " observations' device, e.g. torch.as_tensor(actions, device=obs.device)"
        )
    if tuple(a.shape) != (2, problem.act_dim):
        raise ComponentError(
            f"{label}: act(obs [2, {problem.obs_dim}], z) returned shape {tuple(a.shape)};"
            f" expected [E, act_dim] = (2, {problem.act_dim})"
        )


def accepts_kwarg(fn: Callable, name: str) -> bool:
    """Whether ``fn`` can be called with keyword ``name`` (e.g. a backbone's ``sample_rl``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def component_versions(components: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``{"kind/name": "package version"}`` of the plugins providing ``(kind, name)`` pairs."""
    from ertrl_bench import __version__
    from ertrl_bench.plugins import get_plugin_manager, get_registry

    registry, pm = get_registry(), get_plugin_manager()
    dists = {pm.get_name(p): f"{d.project_name} {d.version}" for p, d in pm.list_plugin_distinfo()}
    out = {}
    for kind, name in components:
        table = registry.entries.get(kind, {})
        if name not in table:
            continue
        plugin = table[name].plugin
        key = plugin.split(" (")[-1].rstrip(")") if " (" in plugin else plugin
        if key.startswith("ertrl_bench."):
            out[f"{kind}/{name}"] = f"ertrl-bench {__version__}"
        else:
            out[f"{kind}/{name}"] = dists.get(key, plugin)
    return out
