"""Conformance checkers for plugin components, like gymnasium's ``check_env``.

Each ``check_*`` builds the component (or takes a built one), runs it on tiny real tensors or
envs, and raises ``ConformanceError`` listing every contract violation in plain words; it
returns the built component when all is well. Use them in a plugin's tests::

    from ertrl_bench.testing import check_encoder_loss
    check_encoder_loss(MyLoss, MyOptions())

``component`` is a factory (``factory(options, problem)``; ``factory(options)`` for env
families), a registered name (its default options are used unless ``options`` is given), or an
already-built object. The contracts: ``ertrl_bench.components`` and docs/plugins.md.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ertrl_bench.batch import TaskDataset, Transitions
from ertrl_bench.components import StepBatch
from ertrl_bench.errors import ErtrlError
from ertrl_bench.problem import DataStats, Problem


class ConformanceError(ErtrlError, AssertionError):
    """A component breaks its contract; the message lists every violation."""


def _fail(what: str, problems: list[str]) -> None:
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConformanceError(f"{what}: {len(problems)} contract violation(s):\n{lines}")


def tiny_problem(
    family=None, obs_dim: int = 3, act_dim: int = 2, latent_dim: int = 4, stats: bool = True
) -> Problem:
    """A small CPU ``Problem`` (Point-Robot family unless given), with data statistics."""
    if family is None:
        from ertrl_bench.envs.point_robot import PointRobot

        family = PointRobot()
    s = None
    if stats:
        s = DataStats(
            torch.zeros(obs_dim), torch.ones(obs_dim), torch.tensor(0.0), torch.tensor(1.0)
        )
    return Problem(family, obs_dim, act_dim, latent_dim, torch.device("cpu"), s)


def tiny_transitions(
    problem: Problem, tasks: int, n: int, seed: int = 0, mask: torch.Tensor | None = None
) -> Transitions:
    """Random transitions ``[tasks, n, ...]`` of the problem's dimensions."""
    g = torch.Generator().manual_seed(seed)
    ds, da = problem.obs_dim, problem.act_dim
    obs = torch.randn(tasks, n, ds, generator=g)
    act = torch.rand(tasks, n, da, generator=g) * 2 - 1
    return Transitions(
        obs,
        act,
        torch.randn(tasks, n, 1, generator=g),
        obs + 0.1 * torch.randn(tasks, n, ds, generator=g),
        torch.zeros(tasks, n, 1),
        task_ids=torch.arange(tasks),
        mask=mask,
    )


def _is_built(kind: str, obj) -> bool:
    if kind == "encoders":
        return isinstance(obj, torch.nn.Module)
    if kind == "envs":
        return hasattr(obj, "tasks") and hasattr(obj, "make")
    from ertrl_bench.components import REQUIRED

    return all(callable(getattr(obj, m, None)) for m in REQUIRED[kind])


def _built(check: str, kind: str, component, options, problem) -> tuple[Any, str, list[str]]:
    """What ``check`` starts from: the component built (from a factory, a registered name, or
    already built; a ``ConformanceError`` now if it cannot be), the label its problems are
    reported under, ``check(label)``, and the list they are collected in."""
    problems: list[str] = []
    if isinstance(component, str):
        from ertrl_bench.plugins import get_registry

        entry = get_registry().get(kind, component)
        factory, label = entry.factory, f"{component!r} (plugin {entry.plugin})"
        if options is None and entry.options is not None:
            options = entry.options()
    elif not isinstance(component, type) and _is_built(kind, component):
        return component, f"{check}({type(component).__name__})", problems
    else:
        factory, label = component, getattr(component, "__name__", repr(component))
    what, obj = f"{check}({label})", None
    try:
        obj = factory(options) if kind in ("envs", "executors") else factory(options, problem)
    except Exception as exc:
        problems.append(f"building it failed: {type(exc).__name__}: {exc}")
    _fail(what, problems)
    return obj, what, problems


def _check_logs(logs: Any, where: str, problems: list[str]) -> None:
    if not isinstance(logs, dict):
        problems.append(f"{where} must return a dict of logs ({{}} if none), got {logs!r:.60}")
        return
    for k, v in logs.items():
        if not isinstance(k, str):
            problems.append(f"{where}: log name {k!r} is not a string")
        if isinstance(v, torch.Tensor):
            if v.numel() != 1:
                problems.append(
                    f"{where}: log {k!r} is a tensor of shape {tuple(v.shape)}, not 0-dim"
                )
            elif v.requires_grad:
                problems.append(f"{where}: log {k!r} carries gradient; log v.detach()")
            elif not math.isfinite(float(v)):
                problems.append(f"{where}: log {k!r} is {float(v)} on tiny random data")
        elif isinstance(v, (int, float)):
            if not math.isfinite(float(v)):
                problems.append(f"{where}: log {k!r} is {v} on tiny random data")
        else:
            problems.append(f"{where}: log {k!r} is a {type(v).__name__}, not a number")


def _encoder_for(problem: Problem):
    """The checker's own encoder, with torch's init: its z varies at O(1), so a loss that
    ignores the mask shows above the tolerances (rlkit's +-3e-3 output layer keeps z ~ 1e-3)."""
    from ertrl_bench.encoders.mlp import MLPEncoder, MLPEncoderOptions

    return MLPEncoder(MLPEncoderOptions(hidden=(16,)), dataclasses.replace(problem, init="torch"))


def check_encoder_loss(
    component: Any,
    options: Any = None,
    problem: Problem | None = None,
    tasks: int = 3,
    context: int = 6,
    rl: int = 8,
):
    """Check an encoder loss against ``components.EncoderLoss``."""
    problem = problem or tiny_problem()
    loss_obj, what, problems = _built(
        "check_encoder_loss", "encoder_losses", component, options, problem
    )
    for m in ("update", "encoder_loss", "joint_parameters", "state_dict"):
        if not callable(getattr(loss_obj, m, None)):
            problems.append(f"it has no method {m}()")
    _fail(what, problems)

    encoder = _encoder_for(problem)

    def encode(t: Transitions):
        return encoder(t.features(problem.uses_next_obs), t.mask)

    def batch_of(ctx: Transitions, rl_batch: Transitions) -> StepBatch:
        z_i, z = encode(ctx)
        return StepBatch(ctx, rl_batch, z_i, z, encode)

    ctx, rl_batch = (
        tiny_transitions(problem, tasks, context, 1),
        tiny_transitions(problem, tasks, rl, 2),
    )
    joint = loss_obj.joint_parameters()
    if not isinstance(joint, (list, tuple)) or not all(
        isinstance(p, torch.Tensor) and p.requires_grad for p in joint
    ):
        problems.append(
            f"joint_parameters() must return a list of trainable tensors ([] if none), got {joint!r:.60}"
        )
    try:
        _check_logs(loss_obj.update(batch_of(ctx, rl_batch).detached()), "update(batch)", problems)
    except Exception as exc:
        problems.append(f"update(batch) raised {type(exc).__name__}: {exc}")
    if any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters()):
        problems.append("update(batch) put gradients into the encoder; it must use detached data")
    encoder.zero_grad(set_to_none=True)

    def run_loss(c: Transitions, seed: int = 0):
        torch.manual_seed(seed)
        out = loss_obj.encoder_loss(batch_of(c, rl_batch))
        if not (isinstance(out, tuple) and len(out) == 2):
            problems.append(f"encoder_loss(batch) must return (loss, logs), got {out!r:.60}")
            return None
        loss, logs = out
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            problems.append(f"encoder_loss(batch)[0] must be a 0-dim tensor, got {shape}")
            return None
        _check_logs(logs, "encoder_loss(batch)[1]", problems)
        return loss

    try:
        loss = run_loss(ctx)
    except Exception as exc:
        problems.append(f"encoder_loss(batch) raised {type(exc).__name__}: {exc}")
        loss = None
    if loss is not None:
        if not torch.isfinite(loss):
            problems.append(f"encoder_loss(batch) is {float(loss)} on tiny random data")
        elif loss.requires_grad:
            loss.backward()
            grads = [p.grad for p in encoder.parameters() if p.grad is not None]
            if any(not torch.isfinite(g).all() for g in grads):
                problems.append("the encoder's gradient from encoder_loss is not finite")
        # padded transitions (online contexts) must not change the loss
        mask = torch.ones(tasks, context, dtype=torch.bool)
        mask[:, context // 2 :] = False
        try:
            a = run_loss(_with_garbage(ctx, mask, 2.0), seed=1)
            b = run_loss(_with_garbage(ctx, mask, -0.7), seed=1)
            if a is not None and b is not None and not torch.allclose(a, b, rtol=1e-4, atol=1e-5):
                problems.append(
                    "the loss changes with the values of masked (padding) context transitions"
                    f" ({float(a.detach()):.4g} vs {float(b.detach()):.4g}); weight by batch.ctx.weights()"
                    " (batch.masked_mean)"
                )
        except Exception as exc:
            problems.append(f"encoder_loss on a masked context raised {type(exc).__name__}: {exc}")
    _check_state_dict(
        loss_obj, problems, lambda: loss_obj.update(batch_of(ctx, rl_batch).detached())
    )
    _fail(what, problems)
    return loss_obj


def _flat(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(path, leaf)`` pairs of a nested state (dicts, lists, tuples; tensors and numbers)."""
    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            yield from _flat(obj[k], f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _flat(v, f"{prefix}/{i}")
    else:
        yield prefix, obj.detach().clone() if isinstance(obj, torch.Tensor) else obj


def _state_differences(a: list, b: list) -> list[str]:
    if [k for k, _ in a] != [k for k, _ in b]:
        return ["its keys"]
    return [
        k
        for (k, x), (_, y) in zip(a, b, strict=True)
        if not (torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y)
    ]


def _check_state_dict(
    component: Any, problems: list[str], step: Callable[[], Any] | None = None
) -> None:
    """The checkpoint contract (docs/plugins.md "state_dict"): ``state_dict()`` is a dict a
    checkpoint can store (``torch.load(weights_only=True)`` reads it back) and
    ``load_state_dict(state)`` restores it *whole*: ``step`` (one ``update``) taken after a
    restore repeats, bit for bit, the one taken right after the state was saved."""
    try:
        state = component.state_dict()
    except Exception as exc:
        problems.append(f"state_dict() raised {type(exc).__name__}: {exc}")
        return
    if not isinstance(state, dict):
        problems.append(f"state_dict() must return a dict, got {type(state).__name__}")
        return
    if not callable(getattr(component, "load_state_dict", None)):
        problems.append(
            "it has no load_state_dict(state): a run using it cannot resume from a checkpoint"
        )
        return
    try:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=True)
    except Exception as exc:
        problems.append(
            "state_dict() holds something a checkpoint cannot store (only tensors, numbers,"
            f" strings, None and lists / tuples / dicts of them): {type(exc).__name__}:"
            f" {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}"
        )
        return
    if step is None:
        return
    rng = torch.get_rng_state()
    try:
        step()
        after = list(_flat(component.state_dict()))
        component.load_state_dict(saved)
        torch.set_rng_state(rng)
        step()
        again = list(_flat(component.state_dict()))
    except Exception as exc:
        problems.append(
            f"load_state_dict(state_dict()) then update raised {type(exc).__name__}: {exc}"
        )
        return
    if differ := _state_differences(after, again):
        problems.append(
            "load_state_dict(state_dict()) does not restore the whole state: the update after"
            f" it ends elsewhere ({', '.join(differ[:4])}); state_dict() must hold every"
            " network, optimizer and number that update() changes"
        )


def _with_garbage(t: Transitions, mask: torch.Tensor, value: float) -> Transitions:
    fill = ~mask[..., None]
    fields = [
        torch.where(fill, torch.full_like(x, value), x)
        for x in (t.obs, t.actions, t.rewards, t.next_obs, t.dones)
    ]
    return Transitions(*fields, task_ids=t.task_ids, mask=mask)


def check_encoder(
    component: Any, options: Any = None, problem: Problem | None = None, tasks: int = 3, n: int = 6
):
    """Check a context encoder: shapes, masks, gradient (``components.Encoder``)."""
    problem = problem or tiny_problem()
    enc, what, problems = _built("check_encoder", "encoders", component, options, problem)
    if not isinstance(enc, torch.nn.Module):
        problems.append(f"it must be a torch.nn.Module, got {type(enc).__name__}")
        _fail(what, problems)
    L, K = problem.latent_dim, problem.context_dim
    ctx = tiny_transitions(problem, tasks, n)
    x = ctx.features(problem.uses_next_obs)
    try:
        out = enc(x, None)
    except Exception as exc:
        problems.append(f"encoder(x [{tasks}, {n}, {K}], None) raised {type(exc).__name__}: {exc}")
        _fail(what, problems)
    if not (isinstance(out, tuple) and len(out) == 2):
        problems.append("it must return (z_i, z)")
        _fail(what, problems)
    z_i, z = out
    if tuple(z_i.shape) != (tasks, n, L):
        problems.append(
            f"z_i has shape {tuple(z_i.shape)}, expected [tasks, n, latent] = {(tasks, n, L)}"
        )
    if tuple(z.shape) != (tasks, L):
        problems.append(f"z has shape {tuple(z.shape)}, expected [tasks, latent] = {(tasks, L)}")
    if not torch.isfinite(z).all():
        problems.append("z is not finite on tiny random data")
    if z.requires_grad:
        z.sum().backward()
        if not any(p.grad is not None for p in enc.parameters()):
            problems.append("no gradient reaches the encoder's parameters from z")
    else:
        problems.append("z does not depend on the encoder's parameters (no gradient)")
    mask = torch.ones(tasks, n, dtype=torch.bool)
    mask[:, n // 2 :] = False
    try:
        with torch.no_grad():
            za = enc(_with_garbage(ctx, mask, 2.0).features(problem.uses_next_obs), mask)[1]
            zb = enc(_with_garbage(ctx, mask, -0.7).features(problem.uses_next_obs), mask)[1]
            zv = enc(x[:, : n // 2], None)[1]
        if not torch.allclose(za, zb, atol=1e-5):
            problems.append("z changes with the values of masked (padding) transitions")
        elif not torch.allclose(za, zv, atol=1e-5):
            problems.append(
                "z of a masked context differs from z of its valid transitions alone"
                " (the mask must drop padding, not weight it)"
            )
    except Exception as exc:
        problems.append(f"encoder(x, mask) raised {type(exc).__name__}: {exc}")
    _fail(what, problems)
    return enc


def check_backbone(
    component: Any, options: Any = None, problem: Problem | None = None, tasks: int = 3, b: int = 8
):
    """Check an offline RL backbone: ``update`` logs, ``act`` shapes and range, determinism."""
    problem = problem or tiny_problem()
    bb, what, problems = _built("check_backbone", "backbones", component, options, problem)
    for m in ("update", "act", "state_dict"):
        if not callable(getattr(bb, m, None)):
            problems.append(f"it has no method {m}()")
    _fail(what, problems)
    from ertrl_bench.components import accepts_kwarg

    rl = tiny_transitions(problem, tasks, b, 3)
    z = torch.tanh(torch.randn(tasks, problem.latent_dim))
    zq = z.clone().requires_grad_(True)
    extra = {}
    if accepts_kwarg(bb.update, "sample_rl"):
        extra["sample_rl"] = lambda: tiny_transitions(problem, tasks, b, 4)
    try:
        _check_logs(bb.update(rl, zq, z, **extra), "update(rl, z_q, z)", problems)
    except Exception as exc:
        problems.append(f"update(rl, z_q, z) raised {type(exc).__name__}: {exc}")
    obs = torch.randn(5, problem.obs_dim)
    ze = torch.tanh(torch.randn(5, problem.latent_dim))
    try:
        a = bb.act(obs, ze, deterministic=True)
        if tuple(a.shape) != (5, problem.act_dim):
            problems.append(
                f"act(obs [5, ds], z [5, L]) has shape {tuple(a.shape)}, expected (5, {problem.act_dim})"
            )
        elif not torch.isfinite(a).all() or a.abs().max() > 1.0 + 1e-6:
            problems.append("act() must return finite actions in [-1, 1]")
        elif not torch.equal(a, bb.act(obs, ze, deterministic=True)):
            problems.append("act(..., deterministic=True) is not deterministic")
        if isinstance(a, torch.Tensor) and a.requires_grad:
            problems.append(
                "act() returns a tensor with gradient; decorate it with @torch.no_grad()"
            )
        bb.act(obs, ze, deterministic=False)
    except Exception as exc:
        problems.append(f"act(obs, z, deterministic) raised {type(exc).__name__}: {exc}")
    _check_state_dict(bb, problems, lambda: bb.update(rl, z, z, **extra))
    _fail(what, problems)
    return bb


def check_env_family(component: Any, options: Any = None, registered_name: str | None = None):
    """Check a task family: splits, envs, spaces in [-1, 1], batched stepping."""
    from ertrl_bench.envs.base import SPLITS, BatchEnv, Task

    fam, what, problems = _built("check_env_family", "envs", component, options, None)
    name = getattr(fam, "name", "")
    if not name:
        problems.append("it has no `name` (the dataset cache is keyed by it)")
    if registered_name is not None and name != registered_name:
        problems.append(
            f"its name {name!r} differs from its registered name {registered_name!r}: it would"
            " share another family's dataset cache"
        )
    tasks: dict[str, list] = {}
    for split in SPLITS:
        try:
            tasks[split] = fam.tasks(split)
            if not tasks[split] or not all(isinstance(t, Task) for t in tasks[split]):
                problems.append(f"tasks({split!r}) must return a non-empty list of Task")
        except Exception as exc:
            problems.append(f"tasks({split!r}) raised {type(exc).__name__}: {exc}")
    _fail(what, problems)
    keys = [t.key for s in SPLITS for t in tasks[s]]
    if len(set(keys)) != len(keys):
        problems.append("two tasks share a key (task index): their data would collide")
    train = tasks["train"][:2]
    try:
        env = fam.make(train[0])
        space = env.action_space
        if not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
            problems.append(
                f"make(task).action_space must be [-1, 1]^d, got [{space.low}, {space.high}]"
            )
        obs, _ = env.reset(seed=0)
        o, r, te, tr, _ = env.step(env.action_space.sample())
        if np.shape(o) != env.observation_space.shape or not np.isfinite(r):
            problems.append(
                "make(task).step returned an observation of the wrong shape or a non-finite reward"
            )
        env.close()
    except Exception as exc:
        problems.append(f"make(task) / reset / step raised {type(exc).__name__}: {exc}")
    try:
        batch = fam.make_batch(train)
        if not isinstance(batch, BatchEnv):
            problems.append("make_batch(tasks) must return a BatchEnv")
        obs = batch.reset(seed=0)
        if np.shape(obs) != (len(train), batch.obs_dim):
            problems.append(
                f"make_batch(tasks).reset() has shape {np.shape(obs)}, expected {(len(train), batch.obs_dim)}"
            )
        res = batch.step(np.zeros((len(train), batch.act_dim), dtype=np.float32))
        if np.shape(res.reward) != (len(train),) or not np.isfinite(res.reward).all():
            problems.append("make_batch(tasks).step() must return one finite reward per env")
        if res.success is not None and np.shape(res.success) != (len(train),):
            problems.append(
                "make_batch(tasks).step().success must be None (the family has no success)"
                f" or one flag per env, got shape {np.shape(res.success)}"
            )
        if hasattr(batch, "close"):
            batch.close()
    except Exception as exc:
        problems.append(f"make_batch(tasks) / reset / step raised {type(exc).__name__}: {exc}")
    defaults = getattr(fam, "component_defaults", {})
    if not isinstance(defaults, dict) or not all(isinstance(v, dict) for v in defaults.values()):
        problems.append("component_defaults must be {component name: {option: value}}")
    _fail(what, problems)
    return fam


CHECKS: dict[str, Callable] = {
    "encoders": check_encoder,
    "encoder_losses": check_encoder_loss,
    "backbones": check_backbone,
    "envs": check_env_family,
}


def random_task_data(family, tasks: list, steps: int = 24, seed: int = 0) -> TaskDataset:
    """A tiny ``TaskDataset`` from uniform random actions in ``family.make_batch(tasks)``."""
    from ertrl_bench.envs.base import make_checked_batch

    rng = np.random.default_rng(seed)
    env = make_checked_batch(family, tasks)
    obs = env.reset(seed=seed)
    per = [{k: [] for k in ("obs", "actions", "rewards", "next_obs", "dones")} for _ in tasks]
    for _ in range(steps):
        a = rng.uniform(-1, 1, (len(tasks), env.act_dim)).astype(np.float32)
        res = env.step(a)
        for i, d in enumerate(per):
            d["obs"].append(obs[i])
            d["actions"].append(a[i])
            d["rewards"].append(res.reward[i])
            d["next_obs"].append(res.next_obs[i])
            d["dones"].append(float(res.terminated[i]))
        done = res.terminated | res.truncated
        obs = res.next_obs
        if done.any():
            obs = env.reset(mask=done)
    if hasattr(env, "close"):
        env.close()
    arrays = [{k: np.asarray(v, dtype=np.float32) for k, v in d.items()} for d in per]
    return TaskDataset(arrays, torch.device("cpu"))
