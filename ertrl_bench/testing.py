"""Pytest fixtures for plugin authors (loaded automatically as the ``ertrl_bench`` pytest plugin).

``register_test_plugin(obj, name)`` registers a throwaway plugin (a module, class or object with
``@hookimpl`` functions) for one test and unregisters it afterwards, even if the test fails::

    from my_package import plugin

    def test_my_loss_is_registered(register_test_plugin):
        register_test_plugin(plugin, "mine")
        assert "my_reg" in get_registry().names("encoder_losses")

The fixture starts from the **built-in plugins only**: installed third-party plugins (your own
package included, once it is ``pip install``-ed) are not loaded during the test, so registering
your plugin module does not clash with its installed copy, and another installed package cannot
break your tests. No ``conftest.py`` trick (``ERTRL_BENCH_LOAD_PLUGINS``) is needed. Everything
is checked at registration: a broken plugin raises ``ertrl_bench.plugins.PluginError`` with one
message naming the plugin and the fix (see docs/plugins.md).

The conformance checkers ``check_encoder_loss``, ``check_encoder``, ``check_backbone`` and
``check_env_family`` (``ertrl_bench.conformance``) are importable from here too.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def register_test_plugin():
    from ertrl_bench.plugins import builtins_only, register_plugin

    with builtins_only():

        def _register(plugin, name: str):
            register_plugin(plugin, name=name)
            return plugin

        yield _register


# Conformance checkers for plugin components (like gymnasium's check_env): see
# ertrl_bench.conformance.
from ertrl_bench.conformance import (  # noqa: E402
    ConformanceError,
    check_backbone,
    check_encoder,
    check_encoder_loss,
    check_env_family,
    tiny_problem,
    tiny_transitions,
)

__all__ = [
    "ConformanceError",
    "check_backbone",
    "check_encoder",
    "check_env_family",
    "check_encoder_loss",
    "register_test_plugin",
    "tiny_problem",
    "tiny_transitions",
]
