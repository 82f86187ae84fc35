"""Built-in context regularizers, registered through the same hook a third-party package uses.

Where is each loss?  none -> none.py;  CSRO's CLUB -> csro.py;  ER-TRL's GAN entropy ->
gan_entropy.py;  UNICORN's decoder -> unicorn.py.  FOCAL's distance-metric loss is not a
regularizer but the methods' shared encoder loss: ``ertrl_bench/losses.py``.
"""

from ertrl_bench.plugins import hookimpl
from ertrl_bench.regularizers.csro import CSROOptions, CSRORegularizer
from ertrl_bench.regularizers.gan_entropy import GANEntropyOptions, GANEntropyRegularizer
from ertrl_bench.regularizers.none import NoneOptions, NoRegularizer
from ertrl_bench.regularizers.unicorn import UnicornOptions, UnicornRegularizer


@hookimpl
def register_regularizers(register):
    register("none", NoRegularizer, NoneOptions)
    register("csro", CSRORegularizer, CSROOptions)
    register("gan_entropy", GANEntropyRegularizer, GANEntropyOptions)
    register("unicorn", UnicornRegularizer, UnicornOptions)
