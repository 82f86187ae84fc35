"""Template ertrl-bench plugin: the ``line-goal`` task family."""

__version__ = "0.1.0"
