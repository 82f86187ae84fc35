"""Built-in encoder losses ("regularizers"), registered through the hook a third-party uses.

Where is each loss?  FOCAL's DML -> dml.py (the formula: ``ertrl_bench/losses.py``);
CSRO's CLUB -> csro.py;  ER-TRL's GAN entropy -> gan_entropy.py;  UNICORN's decoder ->
unicorn.py;  the zero loss -> none.py.  The protocol: ``ertrl_bench.components``.
"""

from ertrl_bench.plugins import hookimpl
from ertrl_bench.regularizers.csro import CSROOptions, CSRORegularizer
from ertrl_bench.regularizers.dml import DMLLoss, DMLOptions
from ertrl_bench.regularizers.gan_entropy import GANEntropyOptions, GANEntropyRegularizer
from ertrl_bench.regularizers.none import NoneOptions, NoRegularizer
from ertrl_bench.regularizers.unicorn import UnicornOptions, UnicornRegularizer


@hookimpl
def register_regularizers(register):
    register("dml", DMLLoss, DMLOptions)
    register("none", NoRegularizer, NoneOptions)
    register("csro", CSRORegularizer, CSROOptions)
    register("gan_entropy", GANEntropyRegularizer, GANEntropyOptions)
    register("unicorn", UnicornRegularizer, UnicornOptions)
