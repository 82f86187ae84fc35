"""Built-in offline RL backbones, registered through the same hook a third-party package uses.

Registered by name (``Lazy``) with torch-free options: listing and validating them loads no torch.
"""

from ertrl_bench.backbones.options import BRACOptions, IQLOptions
from ertrl_bench.plugins import Lazy, hookimpl


@hookimpl
def register_backbones(register):
    register("brac", Lazy("ertrl_bench.backbones.brac:BRAC"), BRACOptions)
    register("iql", Lazy("ertrl_bench.backbones.iql:IQL"), IQLOptions)
