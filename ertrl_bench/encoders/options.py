"""Options of the built-in encoders: torch-free, so ``ertrl-bench plugins`` and ``validate`` list
and check them without loading torch (the encoders themselves load on first use)."""

from __future__ import annotations

from pydantic import PositiveInt

from ertrl_bench.options import Strict


class MLPEncoderOptions(Strict):
    hidden: tuple[PositiveInt, ...] = (200, 200, 200)
