"""Options of the built-in backbones: torch-free, so ``ertrl-bench plugins`` and ``validate``
list and check them without loading torch (the backbones themselves load on first use)."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveFloat, PositiveInt

from ertrl_bench.options import Strict


class BRACOptions(Strict):
    hidden: tuple[PositiveInt, ...] = (256, 256, 256)
    lr: PositiveFloat = 3e-4  # policy, Q, V
    c_lr: PositiveFloat = 1e-4
    c_steps: PositiveInt = 3
    reward_scale: PositiveFloat = 5.0
    discount: float = 0.99
    tau: PositiveFloat = 0.005
    alpha_init: PositiveFloat = 500.0  # families: component_defaults (50 Cheetah/Hopper/Walker)
    alpha_max: PositiveFloat = 2000.0  # families: component_defaults (10000 Hopper/Walker)
    alpha_lr: PositiveFloat = 1.0  # authors: SGD on the raw alpha, lr 1
    target_divergence: float = 0.05
    penalty: Literal["output", "gradient"] = "output"  # authors: output (see module docstring)
    gp_weight: float = 5.0  # weight of the dual critic's penalty (BRAC's and the authors')
    policy_reg: float = 1e-3  # weight of mean(mean^2) and of mean(log_std^2) in the policy loss
    log_std_min: float = -20.0
    log_std_max: float = 0.0
