"""Built-in context encoders, registered through the same hook a third-party package uses."""

from ertrl_bench.encoders.mlp import MLPEncoder, MLPEncoderOptions
from ertrl_bench.plugins import hookimpl


@hookimpl
def register_encoders(register):
    register("mlp", MLPEncoder, MLPEncoderOptions)
