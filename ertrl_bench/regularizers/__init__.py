"""Built-in encoder losses ("regularizers"), registered through the hook a third-party uses.

Where is each loss?  FOCAL's DML -> dml.py (the formula: ``ertrl_bench/losses.py``);
CSRO's CLUB -> csro.py;  ER-TRL's GAN entropy -> gan_entropy.py;  UNICORN's decoder ->
unicorn.py;  the zero loss -> none.py.  Their options: options.py (torch-free, so listing and
validating them loads no torch; each loss is registered by name, ``Lazy``, and loads when built).
The protocol: ``ertrl_bench.components``.
"""

from ertrl_bench.plugins import Lazy, hookimpl
from ertrl_bench.regularizers.options import (
    CSROOptions,
    DMLOptions,
    GANEntropyOptions,
    NoneOptions,
    UnicornOptions,
)


@hookimpl
def register_regularizers(register):
    register("dml", Lazy("ertrl_bench.regularizers.dml:DMLLoss"), DMLOptions)
    register("none", Lazy("ertrl_bench.regularizers.none:NoRegularizer"), NoneOptions)
    register("csro", Lazy("ertrl_bench.regularizers.csro:CSRORegularizer"), CSROOptions)
    register(
        "gan_entropy",
        Lazy("ertrl_bench.regularizers.gan_entropy:GANEntropyRegularizer"),
        GANEntropyOptions,
    )
    register("unicorn", Lazy("ertrl_bench.regularizers.unicorn:UnicornRegularizer"), UnicornOptions)
