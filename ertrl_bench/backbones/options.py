"""Options of the built-in backbones: torch-free, so ``ertrl-bench plugins`` and ``validate``
list and check them without loading torch (the backbones themselves load on first use)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
)

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
    log_std_init_bias: float | None = Field(
        None,
        description=(
            "Ours, off by default: the bias the actor's log-std head starts at (e.g. -1.0), "
            "inside (log_std_min, log_std_max), instead of the init's (rlkit: +-1e-3, at the "
            "clamp's upper bound 0, where a log-std that starts above it gets no gradient; "
            "docs/departures.md)."
        ),
    )

    @field_validator("log_std_init_bias")
    @classmethod
    def _inside_the_clamp(cls, bias: float | None, info: ValidationInfo) -> float | None:
        """A bias at or outside the clamp would start the head where the clamp passes no
        gradient: the trap the option is there to avoid."""
        lo, hi = info.data.get("log_std_min"), info.data.get("log_std_max")
        if bias is None or lo is None or hi is None:
            return bias  # unset, or the bounds already failed (reported on their own)
        if not lo < bias < hi:
            suggest = hi - 1.0 if hi - 1.0 > lo else (lo + hi) / 2
            raise ValueError(
                f"{bias} is not inside the log-std clamp ({lo}, {hi}): a head that starts at or "
                f"beyond the clamp gets no gradient there; use e.g. {suggest}"
            )
        return bias

    @model_serializer(mode="wrap")
    def _unset_options_left_out(self, handler: SerializerFunctionWrapHandler) -> dict:
        """``log_std_init_bias`` unset is left out of the dump: the resolved params, hence every
        run id of a suite that does not set it, stay as they were before the option existed."""
        data = handler(self)
        if data.get("log_std_init_bias") is None:
            data.pop("log_std_init_bias", None)
        return data


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
