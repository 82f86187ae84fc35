"""Options of the built-in encoder losses: torch-free, so ``ertrl-bench plugins`` and
``validate`` list and check them without loading torch (the losses themselves load on first use).
"""

from __future__ import annotations

from pydantic import Field, PositiveFloat, PositiveInt, field_validator

from ertrl_bench.options import Strict


class DMLOptions(Strict):
    weight: float = Field(10.0, ge=0, description="Multiplier of the distance-metric loss.")
    eps: PositiveFloat = Field(1e-3, description="epsilon of both terms (docs/paper.md).")


class NoneOptions(Strict):
    """No options."""


# names accepted in ``csro_inputs`` / ``inputs`` -> the Transitions field they read
INPUT_FIELDS = {
    "obs": "obs",
    "action": "actions",
    "actions": "actions",
    "reward": "rewards",
    "rewards": "rewards",
    "next_obs": "next_obs",
}


class CSROOptions(Strict):
    weight: float = Field(10.0, ge=0)  # families override it: component_defaults["csro"]
    inputs: tuple[str, ...] = ("obs", "action")  # what q(z | x) conditions on
    hidden: tuple[PositiveInt, ...] = (200, 200, 200)  # same shape as the context encoder
    lr: float = Field(3e-4, gt=0)  # q's Adam (the authors use the encoder's lr, 3e-4)
    model_loss_weight: float = Field(10.0, gt=0)  # weight of q's log-likelihood (docs/paper.md)
    # tanh on all of q's outputs (the authors' net: mu in [-1, 1], var in [0.313, 1.313]);
    # False = the unbounded form, whose estimate explodes when z_i ~ f(s, a) -- comparison only
    bounded: bool = True

    @field_validator("inputs")
    @classmethod
    def _known_inputs(cls, value):
        unknown = [name for name in value or () if name not in INPUT_FIELDS]
        if unknown or value == ():
            what = f"unknown {', '.join(map(repr, unknown))}" if unknown else "empty"
            raise ValueError(f"{what}; choose from {', '.join(INPUT_FIELDS)}")
        return value


class GANEntropyOptions(Strict):
    weight: float = Field(5.0, ge=0)  # families override it: component_defaults (2.5 or 5)
    noise_dim: int = Field(20, gt=0)
    gan_steps: int = Field(5, ge=0)  # GAN updates per train step
    lr: float = Field(2e-4, gt=0)  # Adam lr of both G and D
    generator_hidden: tuple[PositiveInt, ...] = (200, 200, 200)
    discriminator_hidden: tuple[PositiveInt, ...] = (256, 256)
    jitter: float = Field(1e-5, ge=0)  # added to the covariance's diagonal (authors: 1e-5)


class UnicornOptions(Strict):
    weight: float = Field(1.5, ge=0)  # families override it: component_defaults["unicorn"]
    hidden: tuple[PositiveInt, ...] = (256, 256)
    min_std: float = Field(1e-3, gt=0)  # floor of the normalising stds
