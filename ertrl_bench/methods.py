"""The named methods of the paper's table, defined in one place.

A method = encoder + encoder loss (FOCAL's DML or none) + regularizer + backbone. Third-party
packages add their own through the ``register_methods`` hook.
"""

from ertrl_bench.config import Component, MethodSpec
from ertrl_bench.plugins import hookimpl

METHODS: dict[str, MethodSpec] = {
    # FOCAL: distance-metric learning only.
    "focal": MethodSpec(encoder_loss="dml", regularizer=Component(type="none")),
    # Offline PEARL: no DML; the encoder learns through the critic's loss.
    "offline_pearl": MethodSpec(
        encoder_loss="none", regularizer=Component(type="none"), encoder_through_q=True
    ),
    # CSRO: DML + CLUB upper bound on I(z_i; (s, a)).
    "csro": MethodSpec(encoder_loss="dml", regularizer=Component(type="csro")),
    # ER-TRL (the paper's method): DML + GAN-estimated entropy of the behavior policy given z.
    "ertrl": MethodSpec(encoder_loss="dml", regularizer=Component(type="gan_entropy")),
    # UNICORN: DML + reconstruction of (s' - s, r) from (s, a, z).
    "unicorn": MethodSpec(encoder_loss="dml", regularizer=Component(type="unicorn")),
}


@hookimpl
def register_methods(register):
    for name, spec in METHODS.items():
        register(name, spec)
