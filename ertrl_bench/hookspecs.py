"""Every extension point of ertrl-bench, and nothing else.

A plugin is a module (or object) with functions named like the specs below, decorated with
``ertrl_bench.hookimpl``. Built-ins register through exactly these hooks, so
``ertrl_bench/regularizers/__init__.py`` is the worked example for a third-party package, which
declares ``[project.entry-points.ertrl_bench] myname = "mypackage.plugin"``.

Each ``register_*`` hook receives a ``register`` callable. Call it once per component::

    register("csro", CSRORegularizer, CSROOptions)   # name, factory, pydantic options model

The options model validates the ``params`` of a suite's ``{type: csro, params: {...}}``
before any work starts; the factory is called with the validated options plus the problem it
runs on (see ``ertrl_bench.components`` for the exact constructor signatures and protocols).
A name registered twice is an error naming both plugins.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("ertrl_bench")


@hookspec
def register_envs(register):
    """Register task families: ``register(name, factory, options_model)``.

    ``factory(options) -> EnvFamily`` (``ertrl_bench.envs.base.EnvFamily``).
    """


@hookspec
def register_encoders(register):
    """Register context encoders: ``register(name, factory, options_model)``.

    ``factory(options, input_dim, latent_dim) -> Encoder`` (a ``torch.nn.Module`` mapping a
    context ``[tasks, n, features]`` to per-transition ``z_i [tasks, n, latent]`` and the pooled
    ``z [tasks, latent]``).
    """


@hookspec
def register_regularizers(register):
    """Register context regularizers: ``register(name, factory, options_model)``.

    ``factory(options, problem) -> Regularizer`` with ``encoder_loss(ctx, z_i, z)`` (added to the
    encoder objective) and ``update(ctx, z_i, z)`` (trains the regularizer's own networks on
    detached encodings). See ``ertrl_bench.regularizers.base.Regularizer``.
    """


@hookspec
def register_backbones(register):
    """Register offline RL backbones: ``register(name, factory, options_model)``.

    ``factory(options, problem) -> Backbone`` with ``update(batch, z_q, z) -> logs`` and
    ``act(obs, z, deterministic) -> actions``. See ``ertrl_bench.backbones.base.Backbone``.
    """


@hookspec
def register_methods(register):
    """Register named methods: ``register(name, MethodSpec)``.

    A method is a named combination of encoder, encoder loss, regularizer and backbone
    (``ertrl_bench.config.MethodSpec``), usable in a suite by name (``method: ertrl``).
    """


@hookspec
def register_executors(register):
    """Register run executors: ``register(name, factory, options_model)``.

    ``factory(options) -> Executor`` with ``map(run_fn, specs) -> iterator of outcomes`` and
    ``parallel: bool`` (True: the CLI builds the runs' datasets before dispatching them).
    """


@hookspec
def register_commands(cli):
    """Optional: add sub-commands to the ``ertrl-bench`` typer app ``cli``."""
