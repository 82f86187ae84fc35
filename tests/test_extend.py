"""Extending a finished run's budget (``ertrl_bench.extend``): a run whose spec is a finished
run's with more iterations continues that run's kept checkpoint, and ends with the numbers of
the longer run trained from step 0 (CPU, bit for bit); where it cannot, it says why and trains
from step 0. The source runs are only read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ertrl_bench.config import RunSpec
from ertrl_bench.executors import LocalExecutor, LocalOptions
from ertrl_bench.extend import extend_unfinished
from ertrl_bench.runner import run_suite
from ertrl_bench.store import RunDir, write_suite_index
from ertrl_bench.suite_loader import load_suite
from tests.helpers import run_cli, tiny_suite, write_suite

SHORT, LONG = 2, 3  # iterations (of 10 steps: the short run's 20 steps are not a log step)


def _suite(tmp: Path, iterations: int, methods=("focal", "ertrl"), seeds=(0,), **train) -> Path:
    suite = tiny_suite("ext", methods=list(methods), seeds=list(seeds))
    suite["train"].update(iterations=iterations, **train)
    suite["eval"]["splits"] = ["train"]
    suite["checkpoint"] = {"keep": True}
    name = f"ext-{'-'.join(methods)}-{len(seeds)}-{iterations}-{len(train)}.yaml"
    return write_suite(tmp / name, suite)


def _run(suite: Path, root: Path, seeds_per_step: int = 1, **kwargs) -> list:
    specs = load_suite(suite)[1]
    write_suite_index(root, "ext", specs)  # as `ertrl-bench run` does
    ex = LocalExecutor(LocalOptions(jobs=1, seeds_per_step=seeds_per_step))
    outcomes = run_suite(specs, root, ex, **kwargs)
    assert [o.status for o in outcomes] == ["done"] * len(specs), outcomes
    return outcomes


def _comparable(run_dir: Path) -> dict:
    """Everything a run computed: metrics (not its times, not its provenance), the training
    log (not its timing records, resume and extension markers), its z's."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    with np.load(run_dir / "encodings.npz") as z:
        encodings = {k: z[k].tolist() for k in z.files}
    skip = ("resumed_at_step", "extended_from")
    return {
        "metrics": {
            k: v for k, v in metrics.items() if k not in ("wall_s", "timing_s", "extended_from")
        },
        "log": [r for r in log if not any(k in skip or k.endswith("_s") for k in r)],
        "encodings": encodings,
    }


def _results(suite: Path, root: Path) -> dict[str, dict]:
    return {s.run_id(): _comparable(RunDir(root, s).path) for s in load_suite(suite)[1]}


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """FOCAL and ER-TRL to 20 steps (checkpoints kept), and to 30 steps from step 0."""
    tmp = tmp_path_factory.mktemp("extend")
    short, long = _suite(tmp, SHORT), _suite(tmp, LONG)
    _run(short, tmp / "short")
    _run(long, tmp / "long")
    return {"short": short, "long": long, "short_root": tmp / "short", "long_root": tmp / "long"}


def _copy_short(trained: dict, tmp_path: Path) -> Path:
    root = tmp_path / "res"
    shutil.copytree(trained["short_root"], root)
    return root


def test_an_extended_run_has_the_numbers_of_the_longer_run_trained_from_step_0(trained, tmp_path):
    root = _copy_short(trained, tmp_path)
    before = _snapshot(root / "ext")
    outcomes = _run(trained["long"], root)
    for o, spec in zip(outcomes, load_suite(trained["long"])[1], strict=True):
        (source,) = [
            s for s in load_suite(trained["short"])[1] if s.method.name == spec.method.name
        ]
        origin = f"ext/{source.run_id()}"
        assert o.message == f"resumed from step 20 (extends {origin}, finished at step 20)"
        run = RunDir(root, spec).path
        assert json.loads((run / "metrics.json").read_text())["extended_from"] == {
            "run": origin,
            "step": 20,
        }
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        assert {"extended_from": origin, "at_step": 20} in log
        assert not (run / "checkpoint.pt").exists() or spec.checkpoint.keep
    assert _results(trained["long"], root) == _results(trained["long"], trained["long_root"])
    after = _snapshot(root / "ext")
    assert {k: v for k, v in after.items() if k in before and k != "suite.json"} == {
        k: v for k, v in before.items() if k != "suite.json"
    }  # the finished short runs are only read


def test_a_seed_group_extends_from_its_seeds_checkpoints(tmp_path):
    short = _suite(tmp_path, SHORT, methods=("ertrl",), seeds=(0, 1))
    long = _suite(tmp_path, LONG, methods=("ertrl",), seeds=(0, 1))
    _run(short, tmp_path / "res", seeds_per_step=2)
    _run(long, tmp_path / "fresh", seeds_per_step=2)
    outcomes = _run(long, tmp_path / "res", seeds_per_step=2)
    for o in outcomes:
        assert o.message.startswith("trained in a seed group of 2, resumed from step 20 (extends")
    assert _results(long, tmp_path / "res") == _results(long, tmp_path / "fresh")


def test_without_a_kept_checkpoint_a_run_says_why_and_trains_from_step_0(trained, tmp_path):
    """Through the CLI as a user runs it: one line per run, extended or not and why."""
    root = _copy_short(trained, tmp_path)
    short = {s.method.name: s for s in load_suite(trained["short"])[1]}
    long = {s.method.name: s for s in load_suite(trained["long"])[1]}
    (RunDir(root, short["focal"]).path / "checkpoint.pt").unlink()
    r = run_cli("run", trained["long"], "--results-dir", root, "--jobs", "1")
    assert r.returncode == 0, r.stderr
    err = " ".join(r.stderr.split())
    assert (
        f"{long['focal'].run_id()}: not extended from ext/{short['focal'].run_id()}: it kept no"
        " checkpoint (a finished run keeps its last one with --keep-checkpoints); trains from"
        " step 0" in err
    )
    assert err.count("not extended") == 1
    assert f"{long['ertrl'].run_id()}: extends ext/{short['ertrl'].run_id()} from step 20" in err
    focal = RunDir(root, long["focal"]).path
    assert "extended_from" not in json.loads((focal / "metrics.json").read_text())
    assert _results(trained["long"], root) == _results(trained["long"], trained["long_root"])


def test_no_extend_trains_from_step_0(trained, tmp_path):
    root = _copy_short(trained, tmp_path)
    for o in _run(trained["long"], root, extend=False):
        assert o.message == ""
    for spec in load_suite(trained["long"])[1]:
        assert "extended_from" not in RunDir(root, spec).read_metrics()


def _notes(specs: list[RunSpec], root: Path) -> list[str]:
    return [" ".join(m.split()) for m in extend_unfinished(specs, root).values()]


def test_a_run_is_not_extended_where_the_numbers_could_differ(trained, tmp_path):
    """Other component versions, an unreadable checkpoint: one line says why, nothing is
    written; a run whose own checkpoint is as far along resumes its own."""
    root = _copy_short(trained, tmp_path)
    specs = load_suite(trained["long"])[1]
    focal = next(s for s in specs if s.method.name == "focal")
    newer = focal.model_copy(update={"versions": {**focal.versions, "encoders/mlp": "x 9"}})
    (note,) = _notes([newer], root)
    assert "not extended from ext/" in note and "other component versions" in note
    assert "encoders/mlp" in note and "-> x 9); trains from step 0" in note
    assert not RunDir(root, focal).checkpoint_path.exists()

    short = next(s for s in load_suite(trained["short"])[1] if s.method.name == "focal")
    (RunDir(root, short).path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    (note,) = _notes([focal], root)
    assert "checkpoint.pt: unreadable (" in note and note.endswith("; trains from step 0")
    assert not RunDir(root, focal).checkpoint_path.exists()

    ertrl = next(s for s in specs if s.method.name == "ertrl")
    assert _notes([ertrl], root)[0].endswith("from step 20 to step 30")
    assert _notes([ertrl], root) == []  # its own checkpoint is as far: it resumes that


def test_a_run_whose_last_evaluation_the_longer_run_skips_is_not_extended(tmp_path):
    """eval_every 2: a 3-iteration run evaluates after iteration 3 (its last), a 4-iteration
    run does not; extending would add that evaluation to its scores."""
    _run(_suite(tmp_path, 3, methods=("focal",), eval_every=2), tmp_path / "res")
    (spec,) = load_suite(_suite(tmp_path, 4, methods=("focal",), eval_every=2))[1]
    (note,) = _notes([spec], tmp_path / "res")
    assert "its last evaluation, after iteration 3, is not one this run makes (every 2" in note
    assert not RunDir(tmp_path / "res", spec).checkpoint_path.exists()


def test_budget_free_key_differs_only_in_iterations(trained):
    (short,), (long,) = (
        [s for s in load_suite(trained[k])[1] if s.method.name == "focal"]
        for k in ("short", "long")
    )
    assert short.computation_key() != long.computation_key()
    assert short.computation_key(budget=False) == long.computation_key(budget=False)
    other = long.model_copy(update={"seed": 1})
    assert other.computation_key(budget=False) != long.computation_key(budget=False)
