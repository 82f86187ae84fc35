"""Written files get the usual permissions (the umask's), not mkstemp's private 0600."""

import os

import pytest

from ertrl_bench.data.store import atomic_write_bytes, atomic_write_json


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        atomic_write_bytes(tmp_path / "b.bin", lambda f: f.write(b"abc"))
        # a plain open() is the reference for "the usual permissions"
        with open(tmp_path / "ref", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert (tmp_path / "ref").stat().st_mode & 0o777 == expected
    for name in ("a.json", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == expected, name
    assert not list(tmp_path.glob(".*tmp"))
