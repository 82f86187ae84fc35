"""The meta-training loop, agnostic to encoder, regularizer and backbone. Read top to bottom.

Each train step, for a meta-batch of M training tasks (one batched tensor, no loop over tasks):
  1. sample a context ``[M, C, ...]`` and an RL batch ``[M, B, ...]`` from each task's data;
  2. encode the context: per-transition ``z_i [M, C, L]`` and pooled ``z [M, L]``;
  3. the regularizer trains its own nets on detached encodings (GAN, CLUB estimator...);
  4. encoder loss = DML (FOCAL) + the regularizer's encoder loss; step the encoder;
  5. the backbone takes one step with z detached (Offline PEARL: the critic's loss also
     reaches the encoder).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ertrl_bench.batch import TaskDataset, Transitions
from ertrl_bench.config import MethodSpec, TrainConfig
from ertrl_bench.errors import TrainingDiverged
from ertrl_bench.losses import dml_loss
from ertrl_bench.plugins import get_registry
from ertrl_bench.problem import Problem
from ertrl_bench.progress import bar

LOG_EVERY = 50  # train steps between training-log records


@dataclass
class Agent:
    """A method's trained parts: encoder, regularizer, backbone."""

    method: MethodSpec
    problem: Problem
    encoder: torch.nn.Module
    regularizer: object
    backbone: object

    def infer(self, ctx: Transitions) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(ctx.features(self.problem.uses_next_obs), ctx.mask)


def build_agent(method: MethodSpec, problem: Problem) -> Agent:
    """Instantiate the method's components from the registry with validated options."""
    reg = get_registry()

    def make(kind, comp, *args):
        entry = reg.get(kind, comp.type)
        options = entry.options.model_validate(comp.params) if entry.options else None
        return entry.factory(options, *args)

    encoder = make("encoders", method.encoder, problem.context_dim, problem.latent_dim).to(
        problem.device
    )
    regularizer = make("regularizers", method.regularizer, problem)
    backbone = make("backbones", method.backbone, problem)
    return Agent(method, problem, encoder, regularizer, backbone)


def _check_finite(logs: dict[str, float], step: int) -> None:
    for name, value in logs.items():
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"loss {name!r} became {value} at train step {step}: the run diverged. Lower the"
                " learning rate or the regularizer's weight in the suite; other runs are kept."
            )


def make_encoder_optimizer(agent: Agent, lr: float) -> torch.optim.Optimizer:
    params = [*agent.encoder.parameters(), *agent.regularizer.joint_parameters()]
    return torch.optim.Adam(params, lr=lr)


def train_step(
    agent: Agent,
    enc_opt: torch.optim.Optimizer,
    ctx: Transitions,
    rl: Transitions,
    sample_rl: Callable[[], Transitions] | None = None,
) -> dict:
    """One meta-training step on a meta-batch (steps 2-5 of the module docstring)."""
    method = agent.method
    z_i, z = agent.infer(ctx)
    logs = dict(agent.regularizer.update(ctx, z_i.detach(), z.detach()))
    enc_loss = z.new_zeros(())
    if method.encoder_loss == "dml":
        dml, dml_logs = dml_loss(z, ctx.task_ids, method.dml.eps)
        enc_loss = enc_loss + method.dml.weight * dml
        logs.update(dml_logs)
    reg_loss, reg_logs = agent.regularizer.encoder_loss(ctx, z_i, z)
    enc_loss = enc_loss + reg_loss
    logs.update(reg_logs)
    logs["encoder/loss"] = enc_loss.detach()

    enc_opt.zero_grad(set_to_none=True)
    if enc_loss.requires_grad:
        enc_loss.backward(retain_graph=method.encoder_through_q)
    z_q = z if method.encoder_through_q else z.detach()
    logs.update(agent.backbone.update(rl, z_q, z.detach(), sample_rl=sample_rl))
    enc_opt.step()
    return logs


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
        agent.backbone.compile()  # torch.compile the backbone's losses (README "Speed")
    n_train = len(train_rows)
    total = cfg.iterations * steps
    global_step = 0
    with bar(f"meta-train {method.name}", total) as pbar:
        for it in range(cfg.iterations):
            for _ in range(steps):
                global_step += 1
                if meta_batch <= n_train:  # without replacement, as the authors sample
                    pick = torch.randperm(n_train, generator=generator, device="cpu")[:meta_batch]
                else:
                    pick = torch.randint(0, n_train, (meta_batch,), generator=generator)
                rows = train_rows[pick.to(train_rows.device)]
                ctx = data.sample(rows, context_size, generator=None)
                rl = data.sample(rows, cfg.rl_batch, generator=None)

                logs = train_step(
                    agent, enc_opt, ctx, rl, lambda rows=rows: data.sample(rows, cfg.rl_batch)
                )

                if global_step % LOG_EVERY == 0 or global_step == total:
                    record = {k: float(v) for k, v in logs.items()}
                    _check_finite(record, global_step)
                    log({"iteration": it, "step": global_step, **record})
                    pbar.advance(
                        LOG_EVERY if global_step % LOG_EVERY == 0 else global_step % LOG_EVERY
                    )
            if (it + 1) % cfg.eval_every == 0 or it + 1 == cfg.iterations:
                evaluate(it, global_step)
