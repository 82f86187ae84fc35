"""Template ertrl-bench plugin: the ``td3bc`` backbone."""

__version__ = "0.1.0"
