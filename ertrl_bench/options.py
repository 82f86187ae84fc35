"""``Strict``: the one base class of every options model (suites, components, plugins).

A leaf module (pydantic only), so a component can subclass it without importing the suite
machinery of ``ertrl_bench.config`` (which re-exports it as ``config.Strict``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt option must never be silently ignored."""

    model_config = ConfigDict(extra="forbid")
