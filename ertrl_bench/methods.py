"""The named methods of the paper's table, defined in one place.

A method = an encoder + a list of encoder losses + a backbone (``config.MethodSpec``); each
name below is a registered component (``ertrl-bench plugins``). Methods are registered as plain
dicts, validated as ``MethodSpec`` when a suite uses them (so this module imports no config).
Third-party packages add their own through the ``register_methods`` hook.
"""

from ertrl_bench.plugins import hookimpl

METHODS: dict[str, dict] = {
    # FOCAL: distance-metric learning only.
    "focal": {"encoder_losses": ["dml"]},
    # Offline PEARL: no encoder loss; the encoder learns through the critic's loss.
    "offline_pearl": {"encoder_losses": [], "encoder_through_q": True},
    # CSRO: DML + CLUB upper bound on I(z_i; (s, a)).
    "csro": {"encoder_losses": ["dml", "csro"]},
    # ER-TRL (the paper's method): DML + GAN-estimated entropy of the behavior policy given z.
    "ertrl": {"encoder_losses": ["dml", "gan_entropy"]},
    # UNICORN: DML + reconstruction of (s' - s, r) from (s, a, z).
    "unicorn": {"encoder_losses": ["dml", "unicorn"]},
}


@hookimpl
def register_methods(register):
    for name, spec in METHODS.items():
        register(name, spec)
