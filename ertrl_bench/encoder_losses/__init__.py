"""Built-in encoder losses ("encoder_losses"), registered through the hook a third-party uses.

Where is each loss?  FOCAL's DML -> dml.py (the formula: ``ertrl_bench/losses.py``);
CSRO's CLUB -> csro.py;  ER-TRL's GAN entropy -> gan_entropy.py;  UNICORN's decoder ->
unicorn.py;  the zero loss -> none.py.  Their options: options.py (torch-free, so listing and
validating them loads no torch; each loss is registered by name, ``Lazy``, and loads when built).
The protocol: ``ertrl_bench.components``.
"""

from ertrl_bench.encoder_losses.options import (
    CSROOptions,
    DMLOptions,
    GANEntropyOptions,
    NoneOptions,
    UnicornOptions,
)
from ertrl_bench.plugins import Lazy, hookimpl


@hookimpl
def register_encoder_losses(register):
    register("dml", Lazy("ertrl_bench.encoder_losses.dml:DMLLoss"), DMLOptions)
    register("none", Lazy("ertrl_bench.encoder_losses.none:NoLoss"), NoneOptions)
    register("csro", Lazy("ertrl_bench.encoder_losses.csro:CSROLoss"), CSROOptions)
    register(
        "gan_entropy",
        Lazy("ertrl_bench.encoder_losses.gan_entropy:GANEntropyLoss"),
        GANEntropyOptions,
    )
    register("unicorn", Lazy("ertrl_bench.encoder_losses.unicorn:UnicornLoss"), UnicornOptions)
