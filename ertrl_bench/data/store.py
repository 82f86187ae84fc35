"""On-disk dataset cache: one ``.npz`` per task plus a JSON manifest with SHA-256 checksums.

Layout (readable without our code)::

    <data root>/<family>/<tier>-<key>/
        manifest.json        # key fields, tier, family, and per task: file, sha256, R_min, R_max
        task-012.npz         # obs, actions, rewards, next_obs, terminals, timeouts,
                             # checkpoint (SAC step of the policy), trajectory (id within task)
        task-012.policy.pt   # that task's behavior policies (actor weights per checkpoint)

The data root is ``$ERTRL_BENCH_DATA`` or ``~/.cache/ertrl-bench/datasets``. ``<key>`` hashes
everything that determines the data (family, its options, tier values, task list, format
version), so a changed setting never reuses stale data. Plain ``.npz`` keeps the format
dependency-free (Minari would add h5py/pyarrow and stores one dataset per env id, which fits
per-task data but not our shared manifest of normalisation constants).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ertrl_bench.errors import DatasetError

FORMAT_VERSION = 1
ARRAYS = (
    "obs",
    "actions",
    "rewards",
    "next_obs",
    "terminals",
    "timeouts",
    "checkpoint",
    "trajectory",
)


def data_root() -> Path:
    env = os.environ.get("ERTRL_BENCH_DATA")
    return Path(env) if env else Path.home() / ".cache" / "ertrl-bench" / "datasets"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, writer) -> None:
    """Write via a temp file in the same folder and ``os.replace``: never a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from colleagues
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True).encode()))


class DatasetDir:
    """One family x tier x key folder."""

    def __init__(self, path: Path):
        self.path = path
        self.manifest_path = path / "manifest.json"

    def manifest(self) -> dict:
        if not self.manifest_path.exists():
            return {"tasks": {}}
        try:
            return json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{self.manifest_path}: corrupted manifest ({exc}); delete the folder to rebuild"
            ) from None

    def write_task(
        self, key: str, arrays: dict[str, np.ndarray], meta: dict, policy_bytes: bytes | None
    ):
        npz = self.path / f"{key}.npz"
        atomic_write_bytes(npz, lambda f: np.savez(f, **{k: arrays[k] for k in ARRAYS}))
        if policy_bytes is not None:
            atomic_write_bytes(self.path / f"{key}.policy.pt", lambda f: f.write(policy_bytes))
        manifest = self.manifest()
        manifest["tasks"][key] = {
            **meta,
            "file": npz.name,
            "sha256": sha256(npz),
            "transitions": int(len(arrays["rewards"])),
        }
        manifest.update({k: v for k, v in meta.items() if k == "_"})
        atomic_write_json(self.manifest_path, manifest)

    def set_info(self, info: dict) -> None:
        manifest = self.manifest()
        manifest.update(info)
        atomic_write_json(self.manifest_path, manifest)

    def check_task(self, key: str) -> str | None:
        """None if the task's file is present and matches its checksum, else what is wrong."""
        entry = self.manifest()["tasks"].get(key)
        if entry is None:
            return "not built"
        npz = self.path / entry["file"]
        if not npz.exists():
            return f"{npz} is missing"
        actual = sha256(npz)
        if actual != entry["sha256"]:
            return f"{npz} fails its checksum (expected {entry['sha256'][:12]}, got {actual[:12]}): corrupted or truncated"
        return None

    def load_task(self, key: str) -> tuple[dict[str, np.ndarray], dict]:
        problem = self.check_task(key)
        if problem is not None:
            raise DatasetError(f"dataset {self.path.name}/{key}: {problem}")
        entry = self.manifest()["tasks"][key]
        try:
            with np.load(self.path / entry["file"]) as z:
                arrays = {k: z[k] for k in ARRAYS}
        except Exception as exc:  # checksum passed but unreadable: still never silently used
            raise DatasetError(f"dataset {self.path.name}/{key}: unreadable ({exc})") from None
        return arrays, entry
