"""The backbone protocol lives with every other component protocol in ``ertrl_bench.components``."""

from ertrl_bench.components import Backbone

__all__ = ["Backbone"]
