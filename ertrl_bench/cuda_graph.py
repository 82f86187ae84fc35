"""The whole meta-training step as one CUDA graph (``train: {cuda_graph: true}``).

Why: at paper sizes a GPU step is bound by launching its ~thousand small kernels one by one from
Python, not by arithmetic (benchmarks/measured/h200-2026-11-26/NOTES.md has the measured
figures). Capturing the step once -- the meta-batch's sampling, every encoder loss's update, the encoder's backward, the backbone's
update and every optimizer step -- and replaying it launches them all in one call.

What capture needs of the components (the built-ins comply; a plugin that does not fails at
capture with the error below, and runs fine without the option):
- no host synchronisation inside ``update`` / ``encoder_loss`` / the backbone's ``update``
  (no ``.item()``, ``float(tensor)``, ``if tensor:``, boolean-mask indexing);
- the same work every step (no Python branch on a step counter);
- optimizers reachable as attributes of the component (they are switched to
  ``capturable=True`` before the first step, so Adam keeps its step count on the device).

Random numbers come from the default CUDA generator, which graph replays advance like eager
steps do. Unlike the eager step, the finiteness check runs after the replay, so a step that
goes non-finite has also moved the encoder; the run stops with the same ``TrainingDiverged``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ertrl_bench.batch import TaskDataset
from ertrl_bench.components import ComponentError
from ertrl_bench.step import Agent, StepOutputs, check_finite, step_tensors

WARMUP_STEPS = 3  # eager steps on a side stream before capture (cuBLAS handles, allocations)


def agent_optimizers(agent: Agent, enc_opt: torch.optim.Optimizer) -> Iterator:
    """The encoder's optimizer and every optimizer held as an attribute of a component."""
    yield enc_opt
    for component in (*agent.losses.values(), agent.backbone):
        for value in vars(component).values():
            if isinstance(value, torch.optim.Optimizer):
                yield value


class GraphedTrainStep:
    """Call with the meta-batch's task rows ``[M]`` (on the device) and the step number; returns
    the step's logs. The first ``WARMUP_STEPS`` calls run eagerly, the next captures."""

    def __init__(
        self,
        agent: Agent,
        enc_opt: torch.optim.Optimizer,
        data: TaskDataset,
        meta_batch: int,
        context_size: int,
        rl_batch: int,
    ):
        if data.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not {data.device}")
        self.agent, self.enc_opt, self.data = agent, enc_opt, data
        self.context_size, self.rl_batch = context_size, rl_batch
        self.rows = torch.zeros(meta_batch, dtype=torch.long, device=data.device)
        for opt in agent_optimizers(agent, enc_opt):
            for group in opt.param_groups:
                group["capturable"] = True
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: StepOutputs | None = None
        self.calls = 0
        self.side = torch.cuda.Stream(device=data.device)

    def _body(self) -> StepOutputs:
        rows, data = self.rows, self.data
        ctx = data.sample(rows, self.context_size)
        rl = data.sample(rows, self.rl_batch)
        out = step_tensors(
            self.agent, self.enc_opt, ctx, rl, lambda: data.sample(rows, self.rl_batch)
        )
        self.enc_opt.step()
        return out

    def _capture(self) -> None:
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.static = self._body()
        except RuntimeError as exc:
            raise ComponentError(
                f"train.cuda_graph: capturing the train step failed ({exc}). A component"
                " synchronises with the host or changes its work from step to step (see"
                " ertrl_bench/cuda_graph.py); set train.cuda_graph: false in the suite"
            ) from exc
        self.graph = graph

    def __call__(self, rows: torch.Tensor, step: int) -> dict:
        self.rows.copy_(rows)
        self.calls += 1
        if self.graph is None and self.calls <= WARMUP_STEPS:
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                out = self._body()
            torch.cuda.current_stream().wait_stream(self.side)
        else:
            if self.graph is None:
                self._capture()
            self.graph.replay()
            out = self.static
        check_finite(self.agent, out, step)
        return out.logs
