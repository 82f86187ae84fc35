"""Built-in context encoders, registered through the same hook a third-party package uses.

Registered by name (``Lazy``) with torch-free options: listing and validating them loads no torch.
"""

from ertrl_bench.encoders.options import MLPEncoderOptions
from ertrl_bench.plugins import Lazy, hookimpl


@hookimpl
def register_encoders(register):
    register("mlp", Lazy("ertrl_bench.encoders.mlp:MLPEncoder"), MLPEncoderOptions)
