"""Lazy package exports: a package names what it exports and from which submodule, and the
submodule is imported on first use, so importing the package stays cheap (no torch, matplotlib,
scipy or scikit-learn until a function that needs them is used)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, __all__)`` for ``package`` whose ``exports`` map a name to the submodule
    (relative to the package) that defines it."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            module = importlib.import_module(f".{exports[name]}", package)
            return getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(exports)
