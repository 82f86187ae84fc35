"""Template ertrl-bench plugin: the ``attention`` context encoder."""

__version__ = "0.1.0"
