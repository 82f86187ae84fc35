"""Options of the built-in backbones: torch-free, so ``ertrl-bench plugins`` and ``validate``
list and check them without loading torch (the backbones themselves load on first use)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt

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


class IQLOptions(Strict):
    """Options of ``backbone: {type: iql, params: {...}}``; defaults: the IQL paper's MuJoCo."""

    hidden: tuple[PositiveInt, ...] = Field((256, 256), description="Hidden layers of all nets.")
    lr: PositiveFloat = Field(3e-4, description="Adam learning rate of actor, Q and V.")
    expectile: float = Field(0.7, gt=0, lt=1, description="Expectile of V's regression on Q.")
    temperature: float = Field(3.0, ge=0, description="beta: the actor's weights exp(beta * A).")
    max_weight: PositiveFloat = Field(100.0, description="Clip of the actor's weights exp(beta A).")
    discount: float = Field(0.99, gt=0, le=1, description="Discount factor gamma.")
    tau: PositiveFloat = Field(0.005, le=1, description="Polyak rate of the target Q.")
    reward_scale: PositiveFloat = Field(1.0, description="Rewards are multiplied by this.")
    log_std_min: float = Field(-5.0, description="Lower clamp of the actor's log-std.")
    log_std_max: float = Field(2.0, description="Upper clamp of the actor's log-std.")
