"""The meta-training loop, agnostic to encoder, encoder losses and backbone. Read top to bottom.

Each train step, for a meta-batch of M training tasks (one batched tensor, no loop over tasks):
  1. sample a context ``[M, C, ...]`` and an RL batch ``[M, B, ...]`` from each task's data;
  2. encode the context: per-transition ``z_i [M, C, L]`` and pooled ``z [M, L]``;
  3. each encoder loss trains its own nets on the detached ``StepBatch`` (GAN, CLUB's q...);
  4. encoder objective = the sum of the method's encoder losses (``dml``, ``csro``...);
  5. the backbone takes one step with z detached (Offline PEARL: the critic's loss also
     reaches the encoder), then the encoder steps;
  6. one fused finiteness check of everything the step computed; a NaN / inf names the
     component it came from and stops the run (``TrainingDiverged``).
The protocol each component follows: ``ertrl_bench.components``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ertrl_bench.batch import TaskDataset, Transitions
from ertrl_bench.components import ComponentError, StepBatch, accepts_kwarg, create
from ertrl_bench.config import MethodSpec, TrainConfig
from ertrl_bench.errors import TrainingDiverged
from ertrl_bench.plugins import get_registry
from ertrl_bench.problem import Problem
from ertrl_bench.progress import bar

LOG_EVERY = 50  # train steps between training-log records


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


def build_agent(method: MethodSpec, problem: Problem) -> Agent:
    """Instantiate the method's components through the registry (``components.create``)."""
    reg = get_registry()

    def label(kind: str, what: str, name: str) -> str:
        return f"{what} {name!r} (plugin {reg.get(kind, name).plugin})"

    encoder = create("encoders", method.encoder, problem)
    if not isinstance(encoder, torch.nn.Module):
        raise ComponentError(
            f"{label('encoders', 'encoder', method.encoder.type)}: its factory must return a"
            f" torch.nn.Module, got {type(encoder).__name__}"
        )
    encoder = encoder.to(problem.device)
    losses = {c.type: create("regularizers", c, problem) for c in method.encoder_losses}
    backbone = create("backbones", method.backbone, problem)
    labels = {c.type: label("regularizers", "encoder loss", c.type) for c in method.encoder_losses}
    labels[method.backbone.type] = label("backbones", "backbone", method.backbone.type)
    return Agent(
        method,
        problem,
        encoder,
        losses,
        backbone,
        labels,
        accepts_kwarg(backbone.update, "sample_rl"),
    )


def make_encoder_optimizer(agent: Agent, lr: float) -> torch.optim.Optimizer:
    params = [*agent.encoder.parameters()]
    for name, loss in agent.losses.items():
        joint = loss.joint_parameters()
        if joint is None or isinstance(joint, torch.Tensor):
            raise ComponentError(
                f"{agent.labels[name]}: joint_parameters() must return a list of parameters"
                f" (return [] when there are none), got {type(joint).__name__}"
            )
        params.extend(joint)
    return torch.optim.Adam(params, lr=lr)


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
    """Steps 2-5 of the module docstring, up to (not including) the encoder's optimizer step.

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
    """One meta-training step on a meta-batch (steps 2-6 of the module docstring)."""
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


def json_number(value) -> float | str:
    """A log value as JSON allows it: a float, or ``"nan"`` / ``"inf"`` / ``"-inf"`` as text."""
    v = float(value)
    return v if math.isfinite(v) else str(v)


def _draw_meta_batches(
    n_train: int, meta_batch: int, steps: int, generator: torch.Generator
) -> torch.Tensor:
    """``[steps, meta_batch]`` train-task indices, one meta-batch per step: without replacement
    when the meta-batch fits (as the authors sample), else with."""
    if meta_batch <= n_train:
        return torch.stack(
            [torch.randperm(n_train, generator=generator)[:meta_batch] for _ in range(steps)]
        )
    return torch.randint(0, n_train, (steps, meta_batch), generator=generator)


def meta_train(
    agent: Agent,
    data: TaskDataset,
    train_rows: torch.Tensor,
    cfg: TrainConfig,
    log: Callable[[dict], None],
    evaluate: Callable[[int, int], None],
    generator: torch.Generator,
) -> None:
    """Run ``cfg.iterations`` x ``steps_per_iteration`` train steps, evaluating as configured."""
    hp, method = agent.problem.hparams, agent.method
    steps = cfg.steps_per_iteration or hp.steps_per_iteration
    meta_batch = cfg.meta_batch or hp.meta_batch
    context_size = cfg.context_size or hp.context_size
    enc_opt = make_encoder_optimizer(agent, cfg.encoder_lr)
    if cfg.compile and hasattr(agent.backbone, "compile"):
        agent.backbone.compile()  # torch.compile the backbone's losses (docs/performance.md)
    graphed = None
    if cfg.cuda_graph and data.device.type == "cuda":
        from ertrl_bench.cuda_graph import GraphedTrainStep

        graphed = GraphedTrainStep(agent, enc_opt, data, meta_batch, context_size, cfg.rl_batch)
    n_train = len(train_rows)
    total = cfg.iterations * steps
    global_step = 0
    with bar(f"meta-train {method.name}", total) as pbar:
        for it in range(cfg.iterations):
            # the iteration's meta-batches, drawn on the host (the seeded stream) and moved to
            # the device in one copy, not one per step
            picks = _draw_meta_batches(n_train, meta_batch, steps, generator).to(train_rows.device)
            for pick in picks:
                global_step += 1
                rows = train_rows[pick]
                try:
                    if graphed is not None:
                        logs = graphed(rows, global_step)
                    else:
                        ctx = data.sample(rows, context_size, generator=None)
                        rl = data.sample(rows, cfg.rl_batch, generator=None)

                        def sample_rl(rows=rows) -> Transitions:
                            return data.sample(rows, cfg.rl_batch, generator=None)

                        logs = train_step(agent, enc_opt, ctx, rl, sample_rl, global_step)
                except TrainingDiverged:
                    log({"iteration": it, "step": global_step, "diverged": True})
                    raise

                if global_step % LOG_EVERY == 0 or global_step == total:
                    record = {k: json_number(v) for k, v in logs.items()}
                    log({"iteration": it, "step": global_step, **record})
                    pbar.advance(
                        LOG_EVERY if global_step % LOG_EVERY == 0 else global_step % LOG_EVERY
                    )
            if (it + 1) % cfg.eval_every == 0 or it + 1 == cfg.iterations:
                evaluate(it, global_step)
