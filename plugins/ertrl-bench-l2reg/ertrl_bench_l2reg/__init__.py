"""Example third-party ertrl-bench plugin: the ``l2_context`` encoder loss and ``focal_l2``."""

__version__ = "0.1.0"
