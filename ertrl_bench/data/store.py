"""On-disk dataset cache: one ``.npz`` per task plus a JSON manifest with SHA-256 checksums.

Layout (readable without our code)::

    <data root>/<family>/<tier>-<key>/
        manifest.json        # key fields, tier, family, expected_tasks (the task keys the
                             # builds asked for), diversity (the behavior policies' W2,
                             # ertrl_bench.data.diversity), and per task: file, sha256, R_min,
                             # R_max, policy_file, policy_sha256, degenerate_range
        task-012.npz         # obs, actions, rewards, next_obs, terminals, timeouts,
                             # checkpoint (SAC step of the policy), trajectory (id within task)
        task-012.policy.pt   # that task's behavior policies (actor weights per checkpoint)

The data root is ``$ERTRL_BENCH_DATA`` or ``~/.cache/ertrl-bench/datasets``. ``<key>`` hashes
everything that determines the data (family, its options, tier values, task list, format
version), so a changed setting never reuses stale data. Plain ``.npz`` keeps the format
dependency-free (Minari would add h5py/pyarrow and stores one dataset per env id, which fits
per-task data but not our shared manifest of normalisation constants). The ``.npz`` files are
written with fixed zip timestamps, so the same data always has the same bytes (and checksum).

A missing or malformed manifest is a state, not a crash: ``manifest_problem`` names it,
``datasets list`` shows "incomplete", ``verify`` fails and a build rewrites it. So is a build that
failed or stopped part-way: ``expected_tasks`` is written before its first task, and the folder
is "incomplete: k of N tasks built" until every expected task is there (a build of a subset,
``get_datasets(..., tasks=[...])``, expects only that subset).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from ertrl_bench.errors import DatasetError
from ertrl_bench.stopping import signals_held

# 2: per-task RNG streams (a task's bytes no longer depend on the tasks trained beside it),
#    deterministic .npz bytes, policy checksums. Part of the folder key: v1 caches are never reused.
# 3: the authors' behavior SAC (log-std tanh-rescaled into [-5, 2], critic target every 2 steps,
#    temperature loss on alpha, pytorch_sac's orthogonal init): v2 policies and data differ.
FORMAT_VERSION = 3
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


_TMP = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")


def atomic_write_bytes(path: Path, writer, before_replace=None) -> None:
    """Write via a temp file in the same folder and ``os.replace``: never a half file, and
    never a write through a symlink (``os.replace`` replaces a link at ``path``, not its target).

    The temp file is ``.<name>.<pid>.<random>.tmp``: ``clean_stale_tmp`` removes those whose
    process is gone (a ``kill -9`` mid-write). ``before_replace``: a test hook.
    """
    with signals_held():  # Ctrl-C mid-write: after the write, as KeyboardInterrupt (stopping.py)
        _atomic_write_bytes(path, writer, before_replace)


def _atomic_write_bytes(path: Path, writer, before_replace) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp"
    )
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from colleagues
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace(Path(tmp))
        try:
            os.replace(tmp, path)
        except OSError as exc:  # name the file the caller asked for, not the temp file
            raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """``atomic_write_bytes`` for UTF-8 text (reports, CSVs)."""
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: Path, obj, before_replace=None) -> None:
    atomic_write_bytes(
        path,
        lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True).encode()),
        before_replace,
    )


def pid_alive(pid: int) -> bool:
    """Whether a process of this host has ``pid`` (one owned by another user counts). A killed
    process not yet reaped by its parent (a zombie: its parent died too, say) writes nothing
    more, so it counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: the state letter after the command name in /proc/<pid>/stat
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def clean_stale_tmp(folder: Path, older_than_s: float = 600.0) -> list[Path]:
    """Remove temp files left by killed writers: their pid is gone (or, for names without a
    pid, they are older than ``older_than_s``). Returns what was removed."""
    removed = []
    if not folder.is_dir():
        return removed
    for f in folder.glob(".*.tmp"):
        m = _TMP.match(f.name)
        try:
            if m and int(m.group(1)) != os.getpid():
                stale = not pid_alive(int(m.group(1)))
            else:
                stale = not m and time.time() - f.stat().st_mtime > older_than_s
            if stale:
                f.unlink()
                removed.append(f)
        except OSError:
            continue
    return removed


def savez_deterministic(f, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` with fixed zip timestamps (``np.savez`` stamps the current time), so the
    same arrays always give the same bytes; ``np.load`` reads it as any ``.npz``."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with z.open(info, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(array), allow_pickle=False)


def _pause_hook(folder: Path):
    """Test hook: ``ERTRL_BENCH_TEST_PAUSE=manifest-write:N`` stops the process (forever) while
    the N-th task's manifest update sits in its temp file, touching ``<folder>/.paused``, so a
    test can ``kill -9`` it exactly there. Unset in normal use."""
    spec = os.environ.get("ERTRL_BENCH_TEST_PAUSE", "")
    if not spec.startswith("manifest-write:"):
        return None
    target = int(spec.split(":", 1)[1])
    count = [0]

    def hook(_tmp: Path) -> None:
        count[0] += 1
        if count[0] == target:
            (folder / ".paused").write_text(str(os.getpid()))
            while True:
                time.sleep(1)

    return hook


def _entry_problem(key: str, entry) -> str | None:
    if not isinstance(entry, dict):
        return f"manifest entry of {key} is not a table"
    for field in ("file", "sha256", "policy_file", "policy_sha256"):
        value = entry.get(field)
        if not isinstance(value, str) or not value or "/" in value or value.startswith("."):
            return f"manifest entry of {key} lacks a valid {field!r}"
    for field in ("r_min", "r_max", "transitions"):
        if not isinstance(entry.get(field), (int, float)):
            return f"manifest entry of {key} lacks {field!r}"
    return None


class DatasetDir:
    """One family x tier x key folder."""

    def __init__(self, path: Path):
        self.path = path
        self.manifest_path = path / "manifest.json"
        self._pause = _pause_hook(path)

    def _read(self) -> tuple[dict, str | None]:
        """The manifest (always ``{"tasks": {...}, ...}``) and what is wrong with the file."""
        if not self.manifest_path.exists():
            built = any(self.path.glob("task-*.npz")) if self.path.is_dir() else False
            return {"tasks": {}}, ("manifest.json is missing" if built else None)
        try:
            raw = json.loads(self.manifest_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return {"tasks": {}}, f"manifest.json is unreadable ({exc})"
        if not isinstance(raw, dict):
            return {"tasks": {}}, f"manifest.json is a {type(raw).__name__}, not a table"
        tasks = raw.get("tasks")
        if not isinstance(tasks, dict):
            return {**raw, "tasks": {}}, "manifest.json has no tasks table"
        good = {k: v for k, v in tasks.items() if _entry_problem(k, v) is None}
        bad = [_entry_problem(k, v) for k, v in tasks.items() if k not in good]
        out = {**raw, "tasks": good}
        expected = raw.get("expected_tasks")
        if expected is not None and not (
            isinstance(expected, list) and all(isinstance(k, str) for k in expected)
        ):
            del out["expected_tasks"]
            bad.append("manifest.json's expected_tasks is not a list of task keys")
        return out, ("; ".join(bad) if bad else None)

    def manifest(self) -> dict:
        """The manifest's valid content (malformed parts dropped: those tasks count as unbuilt)."""
        return self._read()[0]

    def manifest_problem(self) -> str | None:
        """What is wrong with ``manifest.json`` (None: present and well formed, or nothing built)."""
        return self._read()[1]

    def incomplete_message(self) -> str | None:
        """``incomplete: ...`` with the command that repairs it, or None."""
        manifest, problem = self._read()
        if problem is None and self.manifest_path.exists():
            built, expected = manifest["tasks"], manifest.get("expected_tasks", [])
            missing = [k for k in expected if k not in built]
            why = "a build failed or stopped, or is still running"
            if not built:
                problem = f"no task is built ({why})"
            elif missing:
                shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
                problem = (
                    f"{len(expected) - len(missing)} of {len(expected)} tasks built,"
                    f" {shown} missing ({why})"
                )
        if problem is None:
            return None
        family, tier = self.path.parent.name, self.path.name.rsplit("-", 1)[0]
        return (
            f"incomplete: {problem}; rebuild with"
            f" `ertrl-bench datasets build {family} --tier {tier}` (same options as before)"
        )

    def clean_stale_tmp(self) -> list[Path]:
        return clean_stale_tmp(self.path)

    def write_task(
        self, key: str, arrays: dict[str, np.ndarray], meta: dict, policy_bytes: bytes
    ) -> None:
        npz = self.path / f"{key}.npz"
        atomic_write_bytes(npz, lambda f: savez_deterministic(f, {k: arrays[k] for k in ARRAYS}))
        pol = self.path / f"{key}.policy.pt"
        atomic_write_bytes(pol, lambda f: f.write(policy_bytes))
        manifest = self.manifest()
        manifest["tasks"][key] = {
            **meta,
            "file": npz.name,
            "sha256": sha256(npz),
            "policy_file": pol.name,
            "policy_sha256": hashlib.sha256(policy_bytes).hexdigest(),
            "transitions": int(len(arrays["rewards"])),
        }
        atomic_write_json(self.manifest_path, manifest, self._pause)

    def expect_tasks(self, keys: list[str]) -> None:
        """Record that a complete folder holds ``keys`` (besides those expected before): written
        when a build starts, so a build that fails or stops part-way is never listed "ok"."""
        before = self.manifest().get("expected_tasks", [])
        self.set_info({"expected_tasks": sorted(set(before) | set(keys))})

    def set_info(self, info: dict) -> None:
        manifest = self.manifest()
        manifest.update(info)
        atomic_write_json(self.manifest_path, manifest)

    def check_task(self, key: str) -> str | None:
        """None if the task's files are present and match their checksums, else what is wrong."""
        entry = self.manifest()["tasks"].get(key)
        if entry is None:
            return "not built"
        for field, sum_field in (("file", "sha256"), ("policy_file", "policy_sha256")):
            path = self.path / entry[field]
            if not path.exists():
                return f"{path} is missing"
            actual = sha256(path)
            if actual != entry[sum_field]:
                return (
                    f"{path} fails its checksum (expected {entry[sum_field][:12]},"
                    f" got {actual[:12]}): corrupted or truncated"
                )
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
