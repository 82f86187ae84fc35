"""A seed group: K runs that differ only in seed, meta-trained as one computation.

``meta_train_group`` is ``training.meta_train`` for K members at once: each member keeps its own
meta-batch generator, RNG streams, log, evaluation and checkpoint, and sees the numbers its run
trained alone would (``ertrl_bench.ensemble`` says how, and within what tolerance). The step is
``step.step_tensors`` with a leading K axis on every tensor: the members' agents stacked into
one (``stack_agents``), each member's losses ``[K]``, their sum back-propagated.

A member whose step goes non-finite fails as it would alone (``TrainingDiverged``, the same
message, the same ``diverged`` log record); the others go on (members never mix: a diverged
member's NaNs stay in its own slices).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ertrl_bench.batch import TaskDataset, Transitions
from ertrl_bench.checkpoint import Checkpointer, CheckpointError
from ertrl_bench.components import StepBatch
from ertrl_bench.config import ResolvedTrainConfig
from ertrl_bench.ensemble import MemberRNG, StackedAdam, stack_transitions
from ertrl_bench.errors import TrainingDiverged
from ertrl_bench.progress import bar
from ertrl_bench.step import Agent, StepOutputs, check_finite
from ertrl_bench.stopping import StopAtStepBoundary
from ertrl_bench.training import (
    LOG_EVERY,
    _draw_meta_batches,
    agent_state,
    json_number,
    load_agent_state,
    make_encoder_optimizer,
)


def ensemble_problems(agent: Agent) -> list[str]:
    """The agent's components that cannot be stacked over seeds (no ``ensemble`` classmethod,
    ``ertrl_bench.ensemble``), as labels; [] when the agent can train in a seed group."""
    parts = {"encoder": agent.encoder, **agent.losses, agent.method.backbone.type: agent.backbone}
    out = []
    for name, part in parts.items():
        if not callable(getattr(type(part), "ensemble", None)):
            label = agent.labels.get(name, f"encoder {agent.method.encoder.type!r}")
            out.append(label)
    return out


@dataclass
class GroupAgent:
    """K members' agents stacked: the ensemble encoder, encoder losses and backbone."""

    members: list[Agent]
    encoder: torch.nn.Module
    losses: dict[str, object]
    backbone: object
    enc_opt: StackedAdam
    rng: MemberRNG

    def infer(self, ctx: Transitions) -> tuple[torch.Tensor, torch.Tensor]:
        uses_next_obs = self.members[0].problem.uses_next_obs
        return self.encoder(ctx.features(uses_next_obs), ctx.mask)

    def write_back(self) -> None:
        """The stacked state into the members' agents and encoder optimizers."""
        self.encoder.write_back()
        for loss in self.losses.values():
            loss.write_back()
        self.backbone.write_back()
        self.enc_opt.write_back()


def stack_agents(
    agents: Sequence[Agent], enc_opts: Sequence[torch.optim.Optimizer], rng: MemberRNG
) -> GroupAgent:
    """One ``GroupAgent`` from K agents of one method (and their encoder optimizers, from
    ``training.make_encoder_optimizer``), in their current state."""
    first = agents[0]

    def stacked(pick: Callable[[Agent], object]):
        parts = [pick(a) for a in agents]
        return type(parts[0]).ensemble(parts, rng)

    encoder = stacked(lambda a: a.encoder)
    losses = {name: stacked(lambda a, n=name: a.losses[n]) for name in first.losses}
    backbone = stacked(lambda a: a.backbone)
    links = [*encoder.links, *(link for loss in losses.values() for link in loss.joint_links())]
    return GroupAgent(list(agents), encoder, losses, backbone, StackedAdam(enc_opts, links), rng)


def _member(out: StepOutputs, k: int) -> StepOutputs:
    """Member k's part of a group step's outputs (for ``check_finite``'s message)."""

    def pick(d: dict) -> dict:
        return {name: v[k] if isinstance(v, torch.Tensor) else v for name, v in d.items()}

    return StepOutputs(
        pick(out.logs),
        pick(out.parts),
        {n: pick(d) for n, d in out.update_logs.items()},
        pick(out.backbone_logs),
    )


def group_step(
    group: GroupAgent,
    ctx: Transitions,
    rl: Transitions,
    sample_rl: Callable[[], Transitions] | None,
    step: int,
    alive: list[bool],
) -> tuple[dict, dict[int, TrainingDiverged]]:
    """One train step of every member (``step.train_step`` with a leading K axis).

    Returns the logs (name -> ``[K]``) and the members that diverged at this step, each with
    the error its run alone raises."""
    first = group.members[0]
    method = first.method
    z_i, z = group.infer(ctx)
    batch = StepBatch(ctx, rl, z_i, z, group.infer)
    detached = batch.detached()
    logs: dict = {}
    update_logs: dict[str, dict] = {}
    for name, loss in group.losses.items():
        update_logs[name] = loss.update(detached)
        logs.update(update_logs[name])
    parts: dict[str, torch.Tensor] = {}
    for name, loss in group.losses.items():
        parts[name], part_logs = loss.encoder_loss(batch)
        logs.update(part_logs)
    enc_loss = sum(parts.values(), z.new_zeros(z.shape[0]))
    logs["encoder/loss"] = enc_loss.detach()
    group.enc_opt.zero_grad(set_to_none=True)
    if enc_loss.requires_grad:  # the sum: each member's gradient is its own loss's
        enc_loss.sum().backward(retain_graph=method.encoder_through_q)
    z_q = z if method.encoder_through_q else z.detach()
    extra = {"sample_rl": sample_rl} if first.backbone_takes_sample_rl else {}
    backbone_logs = group.backbone.update(rl, z_q, z.detach(), **extra)
    logs.update(backbone_logs)
    out = StepOutputs(logs, parts, update_logs, backbone_logs)

    totals = torch.stack([v.detach().float().reshape(z.shape[0], -1).sum(1) for v in logs.values()])
    finite = torch.isfinite(totals.sum(0)).tolist()  # one sync for all members
    diverged: dict[int, TrainingDiverged] = {}
    for k, ok in enumerate(finite):
        if not ok and alive[k]:
            try:
                check_finite(group.members[k], _member(out, k), step)
            except TrainingDiverged as exc:
                diverged[k] = exc
    group.enc_opt.step()
    return logs, diverged


def meta_train_group(
    agents: Sequence[Agent],
    data: TaskDataset,
    train_rows: torch.Tensor,
    cfg: ResolvedTrainConfig,
    logs: Sequence[Callable[[dict], None]],
    evaluates: Sequence[Callable[[int, int], None]],
    generators: Sequence[torch.Generator],
    rng_states: Sequence[dict],
    checkpointers: Sequence[Checkpointer] | None = None,
    resumes: Sequence[dict] | None = None,
) -> list[TrainingDiverged | None]:
    """``training.meta_train`` for K members (one per seed) as one computation.

    Per member: its agent (built under its seed), log, evaluation, meta-batch generator, RNG
    streams (``checkpoint.capture_rng`` as its run alone has them when training starts),
    checkpointer and resume (the ``loop`` part of its checkpoint; all members at one step).
    Evaluations and checkpoints see each member's own agent and RNG streams, as alone.
    Returns, per member, the ``TrainingDiverged`` that stopped it, or None.
    """
    k_members = len(agents)
    steps, meta_batch = cfg.steps_per_iteration, cfg.meta_batch
    enc_opts = [make_encoder_optimizer(a, cfg.encoder_lr) for a in agents]
    rng_states = list(rng_states)
    start_it, global_step = 0, 0
    if resumes is not None:
        positions = {(int(r["iteration"]), int(r["step"])) for r in resumes}
        if len(positions) != 1:
            raise CheckpointError(f"the group's checkpoints are at different steps {positions}")
        for k, resume in enumerate(resumes):
            try:
                load_agent_state(agents[k], enc_opts[k], resume["agent"])
                generators[k].set_state(resume["generator"])
            except Exception as exc:
                raise CheckpointError(
                    f"its state does not fit this run's agent ({type(exc).__name__}: {exc})"[:400]
                ) from None
            rng_states[k] = resume["rng"]
        start_it, global_step = positions.pop()
        if not (0 <= start_it <= cfg.iterations and 0 <= global_step - start_it * steps <= steps):
            raise CheckpointError(f"step {global_step} is not a step of this run's schedule")
    rng = MemberRNG(rng_states, data.device)
    group = stack_agents(agents, enc_opts, rng)
    n_train = len(train_rows)
    total = cfg.iterations * steps
    alive = [True] * k_members
    failed: list[TrainingDiverged | None] = [None] * k_members

    def save(k: int, iteration: int, generator_state: torch.Tensor) -> None:
        checkpointers[k].save(
            {
                "iteration": iteration,
                "step": global_step,
                "generator": generator_state,
                "rng": rng.state(k),
                "agent": agent_state(agents[k], enc_opts[k]),
            }
        )

    def save_all(iteration: int, generator_states: list[torch.Tensor]) -> None:
        """Every live member's checkpoint, mid-iteration (the stacked state written back)."""
        group.write_back()
        for k in range(k_members):
            if alive[k]:
                save(k, iteration, generator_states[k])

    def sample(rows: list[torch.Tensor], n: int) -> Transitions:
        draws = [data.sample(r, n, generator=g) for r, g in zip(rows, rng.generators, strict=True)]
        return stack_transitions(draws)

    name = f"meta-train {agents[0].method.name} x{k_members} seeds"
    with bar(name, total, done=global_step - global_step % LOG_EVERY) as pbar:
        for it in range(start_it, cfg.iterations):
            at_start = [g.get_state() for g in generators]
            picks = [
                _draw_meta_batches(n_train, meta_batch, steps, g).to(train_rows.device)
                for g in generators
            ]
            with StopAtStepBoundary() as stop:
                for i in range(global_step - it * steps, steps):
                    global_step += 1
                    rows = [train_rows[p[i]] for p in picks]
                    ctx = sample(rows, cfg.context_size)
                    rl = sample(rows, cfg.rl_batch)
                    step_logs, diverged = group_step(
                        group,
                        ctx,
                        rl,
                        lambda rows=rows: sample(rows, cfg.rl_batch),
                        global_step,
                        alive,
                    )
                    for k, exc in diverged.items():
                        logs[k]({"iteration": it, "step": global_step, "diverged": True})
                        alive[k], failed[k] = False, exc
                    if not any(alive):
                        return failed
                    if global_step % LOG_EVERY == 0 or global_step == total:
                        for k in range(k_members):
                            if alive[k]:
                                record = {n: json_number(v[k]) for n, v in step_logs.items()}
                                logs[k]({"iteration": it, "step": global_step, **record})
                        pbar.advance(
                            LOG_EVERY if global_step % LOG_EVERY == 0 else global_step % LOG_EVERY
                        )
                    # Ctrl-C / SIGTERM (stop.requested): stop after this step's checkpoint
                    if checkpointers is not None and (stop.requested or checkpointers[0].due()):
                        save_all(it, at_start)
                    if stop.requested:
                        raise KeyboardInterrupt
            if (it + 1) % cfg.eval_every == 0 or it + 1 == cfg.iterations:
                group.write_back()
                for k in range(k_members):
                    if alive[k]:
                        with rng.member(k):
                            evaluates[k](it, global_step)
                        if checkpointers is not None:
                            save(k, it + 1, generators[k].get_state())
    group.write_back()
    return failed
