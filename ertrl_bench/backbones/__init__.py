"""Built-in offline RL backbones, registered through the same hook a third-party package uses."""

from ertrl_bench.backbones.brac import BRAC, BRACOptions
from ertrl_bench.plugins import hookimpl


@hookimpl
def register_backbones(register):
    register("brac", BRAC, BRACOptions)
