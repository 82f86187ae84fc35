"""One meta-training step: steps 2-6 of ``ertrl_bench.training``'s docstring, on one meta-batch.

Its own module so that the eager loop (``ertrl_bench.training``) and the graphed step
(``ertrl_bench.cuda_graph``) both build on it without importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ertrl_bench.batch import Transitions
from ertrl_bench.components import ComponentError, StepBatch
from ertrl_bench.errors import TrainingDiverged

if TYPE_CHECKING:
    from ertrl_bench.config import MethodSpec
    from ertrl_bench.problem import Problem


@dataclass
class Agent:
    """A method's trained parts: encoder, encoder losses (in the method's order), backbone."""

    method: MethodSpec
    problem: Problem
    encoder: torch.nn.Module
    losses: dict[str, object]  # component name -> encoder loss
    backbone: object
    labels: dict[str, str] = field(default_factory=dict)  # component name -> "name (plugin)"
    backbone_takes_sample_rl: bool = False

    def infer(self, ctx: Transitions) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(ctx.features(self.problem.uses_next_obs), ctx.mask)


def _logs(value, label: str, what: str) -> dict:
    if not isinstance(value, dict):
        raise ComponentError(
            f"{label}: {what} must return a dict of logs (name -> number; {{}} when there is"
            f" nothing to log), got {type(value).__name__}"
        )
    return value


def _loss(value, label: str) -> tuple[torch.Tensor, dict]:
    ok = isinstance(value, tuple) and len(value) == 2
    if ok and isinstance(value[0], torch.Tensor) and value[0].dim() == 0:
        return value[0], _logs(value[1], label, "encoder_loss(batch)[1]")
    got = (
        f"a tensor of shape {tuple(value[0].shape)}"
        if ok and isinstance(value[0], torch.Tensor)
        else type(value[0] if ok else value).__name__
    )
    raise ComponentError(
        f"{label}: encoder_loss(batch) must return (0-dim loss tensor, logs dict), got {got}"
    )


@dataclass
class StepOutputs:
    """What a step computed: its logs, and the pieces ``check_finite`` names a culprit from."""

    logs: dict
    parts: dict[str, torch.Tensor]  # component name -> its encoder loss
    update_logs: dict[str, dict]  # component name -> what its update() logged
    backbone_logs: dict


def step_tensors(
    agent: Agent,
    enc_opt: torch.optim.Optimizer,
    ctx: Transitions,
    rl: Transitions,
    sample_rl: Callable[[], Transitions] | None = None,
) -> StepOutputs:
    """Steps 2-5 of ``ertrl_bench.training``'s docstring, up to (not including) the encoder's optimizer step.

    No host synchronisation here (the built-in components have none either), so the graphed
    step (``ertrl_bench.cuda_graph``) can capture it whole.
    """
    method = agent.method
    z_i, z = agent.infer(ctx)
    batch = StepBatch(ctx, rl, z_i, z, agent.infer)
    detached = batch.detached()
    logs: dict = {}
    update_logs: dict[str, dict] = {}
    for name, loss in agent.losses.items():
        update_logs[name] = _logs(loss.update(detached), agent.labels[name], "update(batch)")
        logs.update(update_logs[name])
    parts: dict[str, torch.Tensor] = {}
    for name, loss in agent.losses.items():
        parts[name], part_logs = _loss(loss.encoder_loss(batch), agent.labels[name])
        logs.update(part_logs)
    enc_loss = sum(parts.values(), z.new_zeros(()))
    logs["encoder/loss"] = enc_loss.detach()

    enc_opt.zero_grad(set_to_none=True)  # also drops what an `update` leaked into the encoder
    if enc_loss.requires_grad:
        enc_loss.backward(retain_graph=method.encoder_through_q)
    z_q = z if method.encoder_through_q else z.detach()
    extra = {"sample_rl": sample_rl} if agent.backbone_takes_sample_rl else {}
    backbone_logs = _logs(
        agent.backbone.update(rl, z_q, z.detach(), **extra),
        agent.labels[method.backbone.type],
        "update(rl, z_q, z)",
    )
    logs.update(backbone_logs)
    return StepOutputs(logs, parts, update_logs, backbone_logs)


def train_step(
    agent: Agent,
    enc_opt: torch.optim.Optimizer,
    ctx: Transitions,
    rl: Transitions,
    sample_rl: Callable[[], Transitions] | None = None,
    step: int = 0,
) -> dict:
    """One meta-training step on a meta-batch (steps 2-6 of ``ertrl_bench.training``'s docstring)."""
    out = step_tensors(agent, enc_opt, ctx, rl, sample_rl)
    check_finite(agent, out, step)
    enc_opt.step()
    return out.logs


def _num(v) -> float:
    return float(v.detach().float().sum()) if isinstance(v, torch.Tensor) else float(v)


def check_finite(agent: Agent, out: StepOutputs, step: int) -> None:
    """One fused ``isfinite`` over the sum of every logged number (one device sync per step).

    Only when it fails are the parts inspected, to name the component that diverged.
    """
    logs, parts, update_logs = out.logs, out.parts, out.update_logs
    backbone_logs = out.backbone_logs
    tensors = [v.detach().float().sum() for v in logs.values() if isinstance(v, torch.Tensor)]
    floats = [float(v) for v in logs.values() if isinstance(v, (int, float))]
    total = torch.stack(tensors).sum() if tensors else torch.zeros(())
    if bool(torch.isfinite(total)) and all(math.isfinite(f) for f in floats):
        return

    def bad(d: dict) -> list[str]:
        return [k for k, v in d.items() if not math.isfinite(_num(v))]

    culprits = [
        f"{agent.labels[n]}: encoder loss {_num(v)}" for n, v in parts.items() if bad({n: v})
    ]
    culprits += [
        f"{agent.labels[n]}: update() logged {', '.join(f'{k}={_num(d[k])}' for k in bad(d))}"
        for n, d in update_logs.items()
        if bad(d)
    ]
    if bad(backbone_logs):
        culprits.append(
            f"{agent.labels[agent.method.backbone.type]}: "
            + ", ".join(f"{k}={_num(backbone_logs[k])}" for k in bad(backbone_logs))
        )
    if not culprits:
        culprits = [
            f"logs {', '.join(bad(logs))}" if bad(logs) else "the sum of the logs overflowed"
        ]
    raise TrainingDiverged(
        f"a loss became non-finite at train step {step}: {'; '.join(culprits)}. The run"
        " diverged; lower the learning rate or that loss's weight in the suite; other runs are"
        " kept."
    )
