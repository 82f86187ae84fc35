"""Results layout. A run's ``metrics.json`` is written last, atomically: its presence means done.

::

    results/<suite>/suite.json             every expected run (id, method, env, seed)
    results/<suite>/<run_id>/spec.json     the resolved RunSpec
    results/<suite>/<run_id>/env.json      versions, git SHA, device, plugins
    results/<suite>/<run_id>/log.jsonl     training log (one JSON object per line)
    results/<suite>/<run_id>/encodings.npz final z's per task for the z map (compressed)
    results/<suite>/<run_id>/metrics.json  final scores (the "done" marker)
    results/<suite>/<run_id>/failed.json   why a run failed (removed when it re-runs)
"""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import numpy as np

from ertrl_bench.config import RunSpec
from ertrl_bench.data.store import atomic_write_bytes, atomic_write_json


class RunDir:
    def __init__(self, root: Path, spec: RunSpec):
        self.spec = spec
        self.path = Path(root) / spec.suite / spec.run_id()

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    def is_done(self) -> bool:
        try:
            json.loads(self.metrics_path.read_text())
            return True
        except (FileNotFoundError, json.JSONDecodeError):
            return False

    def start(self, device: str) -> None:
        """Fresh attempt: clear what a previous attempt left, record spec and environment."""
        self.path.mkdir(parents=True, exist_ok=True)
        for name in ("metrics.json", "failed.json", "log.jsonl", "encodings.npz"):
            (self.path / name).unlink(missing_ok=True)
        atomic_write_json(self.path / "spec.json", self.spec.model_dump(mode="json"))
        atomic_write_json(self.path / "env.json", environment_info(device))

    def log(self, record: dict) -> None:
        with open(self.path / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def write_encodings(self, arrays: dict[str, np.ndarray]) -> None:
        atomic_write_bytes(self.path / "encodings.npz", lambda f: np.savez_compressed(f, **arrays))

    def write_metrics(self, metrics: dict) -> None:
        from ertrl_bench.results_schema import validate_metrics  # the shape the report reads

        validate_metrics(metrics)
        atomic_write_json(self.metrics_path, metrics)

    def write_failed(self, error: str, traceback: str) -> None:
        atomic_write_json(self.path / "failed.json", {"error": error, "traceback": traceback})


def write_suite_index(root: Path, suite: str, specs: list[RunSpec]) -> Path:
    path = Path(root) / suite / "suite.json"
    runs = [
        {"run_id": s.run_id(), "method": s.method.name, "env": s.env.type, "seed": s.seed}
        for s in specs
    ]
    atomic_write_json(path, {"suite": suite, "runs": runs})
    return path


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or None
    except Exception:
        return None


def environment_info(device: str) -> dict:
    import gymnasium
    import mujoco
    import torch

    from ertrl_bench import __version__
    from ertrl_bench.plugins import describe_plugins

    return {
        "ertrl_bench": __version__,
        "git_sha": _git_sha(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "mujoco": mujoco.__version__,
        "device": device,
        "plugins": {p["name"]: p["version"] for p in describe_plugins()},
    }
