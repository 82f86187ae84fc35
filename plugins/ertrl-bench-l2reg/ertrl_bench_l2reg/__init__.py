"""Example third-party ertrl-bench plugin: the ``l2_context`` regularizer and ``focal_l2``."""

__version__ = "0.1.0"
