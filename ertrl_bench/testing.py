"""Pytest fixtures for plugin authors (loaded automatically as the ``ertrl_bench`` pytest plugin).

``register_test_plugin(obj, name)`` registers a throwaway plugin (a module, class or object with
``@hookimpl`` functions) for one test and unregisters it afterwards, even if the test fails.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def register_test_plugin():
    from ertrl_bench.plugins import register_plugin, unregister_plugin

    registered: list[str] = []

    def _register(plugin, name: str):
        register_plugin(plugin, name=name)
        registered.append(name)
        return plugin

    try:
        yield _register
    finally:
        for name in registered:
            unregister_plugin(name)


# Conformance checkers for plugin components (like gymnasium's check_env): see
# ertrl_bench.conformance.
from ertrl_bench.conformance import (  # noqa: E402
    ConformanceError,
    check_backbone,
    check_encoder,
    check_env_family,
    check_regularizer,
    tiny_problem,
    tiny_transitions,
)

__all__ = [
    "ConformanceError",
    "check_backbone",
    "check_encoder",
    "check_env_family",
    "check_regularizer",
    "register_test_plugin",
    "tiny_problem",
    "tiny_transitions",
]
