"""Building components: the one path from a suite's ``{type, params}`` to a checked object.

``ertrl_bench.plugins`` fills the registry (what each plugin registered);
``ertrl_bench.components`` says what each kind must do. This module builds from them:

* ``create(kind, component, problem)`` -- every caller builds through it
  (``training.build_agent``, ``runner.make_family``, ``validate --dry-run``...): the suite's
  ``params`` (already merged with the family's defaults, ``EnvFamily.component_defaults``) are
  validated by the options model (``resolve_options``); ONE factory signature,
  ``factory(options, problem)``, except env families and executors, which exist before any
  problem and are called as ``factory(options)``; a factory that raises, or returns an object
  without the kind's methods or with an outdated signature, is one ``ComponentError`` naming the
  component and its plugin, not a traceback.
* ``component_versions`` -- the package versions a run records for its components.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ertrl_bench.components import REQUIRED, WITHOUT_PROBLEM, ComponentError
from ertrl_bench.errors import ErtrlError
from ertrl_bench.plugins import SINGULAR, get_plugin_manager, get_registry

if TYPE_CHECKING:
    from ertrl_bench.problem import Problem


def _label(kind: str, name: str, plugin: str) -> str:
    return f"{SINGULAR[kind]} {name!r} (plugin {plugin})"


def resolve_options(kind: str, component, registry=None):
    """The validated options model of ``component`` (``{type, params}``), or None."""
    from pydantic import ValidationError

    entry = (registry or get_registry()).get(kind, component.type)
    if entry.options is None:
        return None
    try:
        return entry.options.model_validate(component.params)
    except ValidationError as exc:
        from ertrl_bench.options import format_validation_error

        raise ComponentError(
            f"{_label(kind, component.type, entry.plugin)}: invalid params: "
            + "; ".join(format_validation_error(exc, model=entry.options))
        ) from None


def create(kind: str, component, problem: Problem | None = None, registry=None):
    """Build ``component`` (a ``config.Component``) of ``kind`` for ``problem``.

    ``kind`` is a registry kind: envs | encoders | encoder_losses | backbones | executors.
    """
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


def component_versions(components: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``{"kind/name": "package version"}`` of the plugins providing ``(kind, name)`` pairs."""
    from ertrl_bench import __version__

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
