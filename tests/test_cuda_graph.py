"""The graphed train step (``train: {cuda_graph: true}``, ``ertrl_bench/cuda_graph.py``).

Capture needs a CUDA device: those tests skip without one (CI has none; they ran on an H200,
benchmarks/measured/h200-2026-11-26/NOTES.md). The rest -- which optimizers are switched to
capturable, that the option off CUDA is the same run (same id) and a no-op -- run everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ertrl_bench.batch import TaskDataset
from ertrl_bench.config import MethodSpec
from ertrl_bench.methods import METHODS
from ertrl_bench.plugins import get_registry
from ertrl_bench.problem import Problem
from ertrl_bench.step import train_step
from ertrl_bench.suite_loader import load_suite
from ertrl_bench.training import build_agent, make_encoder_optimizer
from tests.helpers import tiny_suite, write_suite

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
M, C, B, N = 4, 16, 32, 200
SMALL = {
    "mlp": {"hidden": [32, 32]},
    "brac": {"hidden": [32, 32]},
    "iql": {"hidden": [32, 32]},
    "csro": {"hidden": [32]},
    "gan_entropy": {"generator_hidden": [32], "discriminator_hidden": [32]},
}


def _agent(method_name: str, device: torch.device, seed: int = 0, backbone: str = "brac"):
    torch.manual_seed(seed)
    entry = get_registry().get("envs", "cheetah-vel")
    problem = Problem(entry.factory(None), 17, 6, 8, device)
    method = MethodSpec.model_validate(
        {**METHODS[method_name], "name": method_name, "backbone": backbone}
    )
    for part in (method.encoder, method.backbone, *method.encoder_losses):
        part.params = {**part.params, **SMALL.get(part.type, {})}
    agent = build_agent(method, problem)
    return agent, make_encoder_optimizer(agent, 3e-4)


def _data(device: torch.device) -> TaskDataset:
    rng = np.random.default_rng(0)
    per_task = [
        {
            "obs": rng.standard_normal((N, 17)),
            "actions": rng.uniform(-1, 1, (N, 6)),
            "rewards": rng.standard_normal(N),
            "next_obs": rng.standard_normal((N, 17)),
            "dones": np.zeros(N),
        }
        for _ in range(M)
    ]
    return TaskDataset(per_task, device)


def test_every_optimizer_of_the_agent_is_found():
    from ertrl_bench.cuda_graph import agent_optimizers

    cases = (("focal", 5), ("csro", 6), ("ertrl", 7), ("unicorn", 5), ("offline_pearl", 5))
    for method, expected in cases:
        agent, opt = _agent(method, torch.device("cpu"))
        found = list(agent_optimizers(agent, opt))
        # the encoder's (UNICORN's decoder joins it), BRAC's four (policy, Q, V, c), CSRO's q,
        # ER-TRL's G and D
        assert len(found) == expected, method
        assert len({id(o) for o in found}) == expected
    agent, opt = _agent("focal", torch.device("cpu"), backbone="iql")
    assert len(set(map(id, agent_optimizers(agent, opt)))) == 4  # encoder's, IQL's policy, Q, V


def test_graphed_step_refuses_a_cpu_dataset():
    from ertrl_bench.cuda_graph import GraphedTrainStep

    agent, opt = _agent("focal", torch.device("cpu"))
    with pytest.raises(ValueError, match="CUDA"):
        GraphedTrainStep(agent, opt, _data(torch.device("cpu")), M, C, B)


def _spec_with_cuda_graph(tmp_path, graph: bool, device: str):
    raw = tiny_suite(device=device)
    raw["train"] = {**raw["train"], "cuda_graph": graph}
    (spec,) = load_suite(write_suite(tmp_path / f"{graph}-{device}.yaml", raw))[1]
    return spec


def test_cuda_graph_off_cuda_is_the_same_run(tmp_path):
    """On CPU the option changes nothing, so it must not make a second run (folder) of the same
    run: the spec records what runs, ``cuda_graph: false``, and the run id is the plain one."""
    plain = _spec_with_cuda_graph(tmp_path, False, "cpu")
    graphed = _spec_with_cuda_graph(tmp_path, True, "cpu")
    assert graphed.train.cuda_graph is False
    assert graphed.run_id() == plain.run_id()
    if not torch.cuda.is_available():  # `auto` on this machine is CPU too
        assert _spec_with_cuda_graph(tmp_path, True, "auto").run_id() == plain.run_id()


@cuda
def test_cuda_graph_on_cuda_is_its_own_run(tmp_path):
    plain = _spec_with_cuda_graph(tmp_path, False, "cuda")
    graphed = _spec_with_cuda_graph(tmp_path, True, "cuda")
    assert graphed.train.cuda_graph is True
    assert graphed.run_id() != plain.run_id()


def _eager_steps(agent, opt, data, rows_seq):
    out = []
    for k, rows in enumerate(rows_seq):
        ctx, rl = data.sample(rows, C), data.sample(rows, B)
        logs = train_step(agent, opt, ctx, rl, lambda r=rows: data.sample(r, B), k)
        out.append({key: float(v) for key, v in logs.items()})
    return out


@cuda
@pytest.mark.parametrize(
    "method, backbone",
    [
        *((m, "brac") for m in ("focal", "csro", "ertrl", "unicorn", "offline_pearl")),
        ("focal", "iql"),
        ("offline_pearl", "iql"),
    ],
)
def test_graphed_step_equals_eager_on_cuda(method, backbone):
    """Same init, data, task rows and CUDA seed: the replayed graph computes the eager steps'
    numbers (random draws included) within float tolerance."""
    from ertrl_bench.cuda_graph import GraphedTrainStep

    dev = torch.device("cuda")
    data = _data(dev)
    g = torch.Generator().manual_seed(1)
    rows_seq = [torch.randperm(M, generator=g).to(dev) for _ in range(8)]
    eager, eager_opt = _agent(method, dev, backbone=backbone)
    graphed, graphed_opt = _agent(method, dev, backbone=backbone)
    torch.cuda.manual_seed(3)
    want = _eager_steps(eager, eager_opt, data, rows_seq)
    step = GraphedTrainStep(graphed, graphed_opt, data, M, C, B)
    torch.cuda.manual_seed(3)
    got = [{k: float(v) for k, v in step(rows, i).items()} for i, rows in enumerate(rows_seq)]
    assert step.graph is not None  # the later steps were replays
    for w, h in zip(want, got, strict=True):
        assert w.keys() == h.keys()
        for key in w:
            assert h[key] == pytest.approx(w[key], rel=1e-3, abs=1e-4), key
    for p, q in zip(eager.encoder.parameters(), graphed.encoder.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4)


@cuda
def test_a_graphed_run_finishes_on_cuda(tmp_path):
    from ertrl_bench.runner import execute

    raw = tiny_suite()
    raw["device"] = "cuda"
    raw["train"] = {**raw.get("train", {}), "cuda_graph": True}
    (spec,) = load_suite(write_suite(tmp_path / "s.yaml", raw))[1]
    out = execute(spec, tmp_path / "results")
    assert out.status == "done", out.message


def test_cuda_graph_option_runs_the_eager_step_off_cuda(tmp_path):
    """On CPU the option is ignored: the run's numbers equal a run without it."""
    from ertrl_bench.runner import execute

    finals = []
    for graph in (False, True):
        raw = tiny_suite(name=f"g{int(graph)}")
        raw["train"] = {**raw["train"], "cuda_graph": graph}
        (spec,) = load_suite(write_suite(tmp_path / f"{graph}.yaml", raw))[1]
        out = execute(spec, tmp_path / "results")
        assert out.status == "done", out.message
        finals.append(out.metrics["final"])
    assert finals[0] == finals[1]


def test_compile_and_cuda_graph_together_is_a_named_error(tmp_path):
    from ertrl_bench.errors import ConfigError

    raw = tiny_suite()
    raw["train"] = {**raw["train"], "cuda_graph": True, "compile": True}
    path = write_suite(tmp_path / "both.yaml", raw)
    with pytest.raises(ConfigError, match=r"train.*compile and cuda_graph together"):
        load_suite(path)
