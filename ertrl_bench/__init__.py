"""ertrl-bench: a pluggable benchmark suite for offline meta-RL context regularizers."""

__version__ = "0.1.0"
