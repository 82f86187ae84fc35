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
Steps 2-6 are ``ertrl_bench.step`` (also captured whole as one CUDA graph by
``ertrl_bench.cuda_graph``). The protocol each component follows: ``ertrl_bench.components``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ertrl_bench.batch import TaskDataset, Transitions
from ertrl_bench.checkpoint import (
    Checkpointer,
    CheckpointError,
    capture_rng,
    restore_rng,
)
from ertrl_bench.components import ComponentError, accepts_kwarg
from ertrl_bench.config import MethodSpec, ResolvedTrainConfig
from ertrl_bench.errors import TrainingDiverged
from ertrl_bench.plugins import get_registry
from ertrl_bench.problem import Problem
from ertrl_bench.progress import bar
from ertrl_bench.registry import create
from ertrl_bench.step import Agent, train_step
from ertrl_bench.stopping import StopAtStepBoundary

LOG_EVERY = 50  # train steps between training-log records


def build_agent(method: MethodSpec, problem: Problem) -> Agent:
    """Instantiate the method's components through the registry (``registry.create``)."""
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
    losses = {c.type: create("encoder_losses", c, problem) for c in method.encoder_losses}
    backbone = create("backbones", method.backbone, problem)
    labels = {
        c.type: label("encoder_losses", "encoder loss", c.type) for c in method.encoder_losses
    }
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


def checkpoint_problems(agent: Agent) -> list[str]:
    """Why the agent's state cannot be checkpointed: components without ``state_dict`` and
    ``load_state_dict`` (``components.EncoderLoss`` / ``Backbone``); [] when it can."""
    parts = {**agent.losses, agent.method.backbone.type: agent.backbone}
    return [
        f"{agent.labels[name]} has no {m}()"
        for name, part in parts.items()
        for m in ("state_dict", "load_state_dict")
        if not callable(getattr(part, m, None))
    ]


def agent_state(agent: Agent, enc_opt: torch.optim.Optimizer) -> dict:
    """Every network and optimizer of the agent, through the components' ``state_dict``."""
    return {
        "encoder": agent.encoder.state_dict(),
        "encoder_optimizer": enc_opt.state_dict(),
        "losses": {name: loss.state_dict() for name, loss in agent.losses.items()},
        "backbone": agent.backbone.state_dict(),
    }


def load_agent_state(agent: Agent, enc_opt: torch.optim.Optimizer, state: dict) -> None:
    """Undo of ``agent_state``: the same method's agent continues exactly where it was."""
    if set(state["losses"]) != set(agent.losses):
        raise ValueError(f"encoder losses {sorted(state['losses'])}, not {sorted(agent.losses)}")
    agent.encoder.load_state_dict(state["encoder"])
    enc_opt.load_state_dict(state["encoder_optimizer"])
    for name, loss in agent.losses.items():
        loss.load_state_dict(state["losses"][name])
    agent.backbone.load_state_dict(state["backbone"])


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
    cfg: ResolvedTrainConfig,
    log: Callable[[dict], None],
    evaluate: Callable[[int, int], None],
    generator: torch.Generator,
    checkpointer: Checkpointer | None = None,
    resume: dict | None = None,
) -> None:
    """Run ``cfg.iterations`` x ``steps_per_iteration`` train steps, evaluating as configured.

    ``checkpointer`` (a ``checkpoint.Checkpointer``) saves the loop's state when it is due and
    after every evaluation; ``resume``, the ``loop`` part of a checkpoint, continues from it:
    the agent, the RNG streams and the meta-batch generator as they were, so the steps that
    follow are those an uninterrupted run takes.
    """
    method = agent.method
    steps, meta_batch = cfg.steps_per_iteration, cfg.meta_batch
    context_size = cfg.context_size
    enc_opt = make_encoder_optimizer(agent, cfg.encoder_lr)
    start_it, global_step = 0, 0
    if resume is not None:  # before the CUDA graph captures the optimizers' state tensors
        try:
            load_agent_state(agent, enc_opt, resume["agent"])
            generator.set_state(resume["generator"])
            restore_rng(resume["rng"])
            start_it, global_step = int(resume["iteration"]), int(resume["step"])
        except Exception as exc:
            raise CheckpointError(
                f"its state does not fit this run's agent ({type(exc).__name__}: {exc})"[:400]
            ) from None
        if not (0 <= start_it <= cfg.iterations and 0 <= global_step - start_it * steps <= steps):
            raise CheckpointError(f"step {global_step} is not a step of this run's schedule")
    if cfg.compile and hasattr(agent.backbone, "compile"):
        agent.backbone.compile()  # torch.compile the backbone's losses (docs/performance.md)
    graphed = None
    if cfg.cuda_graph and data.device.type == "cuda":
        from ertrl_bench.cuda_graph import GraphedTrainStep

        graphed = GraphedTrainStep(agent, enc_opt, data, meta_batch, context_size, cfg.rl_batch)
    n_train = len(train_rows)
    total = cfg.iterations * steps

    def save(iteration: int, generator_state: torch.Tensor) -> None:
        """The loop's state after ``global_step`` steps, ``iteration`` in progress (its
        meta-batches come from ``generator_state``)."""
        loop = {
            "iteration": iteration,
            "step": global_step,
            "generator": generator_state,
            "rng": capture_rng(),
            "agent": agent_state(agent, enc_opt),
        }
        checkpointer.save(loop)

    with bar(
        f"meta-train {method.name}", total, done=global_step - global_step % LOG_EVERY
    ) as pbar:
        for it in range(start_it, cfg.iterations):
            # the iteration's meta-batches, drawn on the host (the seeded stream) and moved to
            # the device in one copy, not one per step
            at_start = generator.get_state()
            picks = _draw_meta_batches(n_train, meta_batch, steps, generator).to(train_rows.device)
            with StopAtStepBoundary() as stop:
                for pick in picks[global_step - it * steps :]:  # a resumed iteration: the rest
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
                    # Ctrl-C / SIGTERM (stop.requested): stop after this step's checkpoint
                    if checkpointer is not None and (stop.requested or checkpointer.due()):
                        save(it, at_start)
                    if stop.requested:
                        raise KeyboardInterrupt
            if (it + 1) % cfg.eval_every == 0 or it + 1 == cfg.iterations:
                evaluate(it, global_step)
                if checkpointer is not None:  # the next iteration, none of its steps done
                    save(it + 1, generator.get_state())
