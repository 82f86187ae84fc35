"""Every extension point of ertrl-bench, and nothing else.

A plugin is a module (or object) with functions named like the specs below, decorated with
``ertrl_bench.plugins.hookimpl`` (``from ertrl_bench.plugins import hookimpl``). Built-ins
register through exactly these hooks, so ``ertrl_bench/encoder_losses/__init__.py`` is the
worked example for a third-party package, which declares
``[project.entry-points.ertrl_bench] myname = "mypackage.plugin"``.

Each ``register_*`` hook receives a ``register`` callable. Call it once per component::

    register("csro", CSROLoss, CSROOptions)   # name, factory, pydantic options model

The options model validates the ``params`` of a suite's ``{type: csro, params: {...}}``
before any work starts (after merging the family's ``component_defaults``). ONE factory
signature: ``factory(options, problem)`` (``ertrl_bench.problem.Problem``); env families and
executors, which exist before any problem, are called as ``factory(options)``. Every component
is built through ``ertrl_bench.registry.create`` and checked against the protocols of
``ertrl_bench.components`` (what each kind must do). A name registered twice is an error naming both plugins.
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

    ``factory(options, problem) -> Encoder``: a ``torch.nn.Module`` called as
    ``encoder(x, mask)`` with a context ``x [tasks, n, problem.context_dim]`` and ``mask [tasks,
    n]`` bool (True = a valid transition; None = all valid; padded online contexts pass one), and
    returning per-transition ``z_i [tasks, n, problem.latent_dim]`` and the pooled ``z [tasks,
    latent]``, which must ignore masked transitions. See ``ertrl_bench.components.Encoder``.
    """


@hookspec
def register_encoder_losses(register):
    """Register encoder losses (registry kind ``encoder_losses``): ``register(name, factory, options_model)``.

    ``factory(options, problem) -> EncoderLoss`` with ``update(batch) -> logs`` (trains the
    loss's own networks on the detached batch) and ``encoder_loss(batch) -> (loss, logs)``
    (a 0-dim loss added to the encoder objective); ``batch`` is a
    ``ertrl_bench.components.StepBatch`` (context and RL batches, z_i, z, task ids, the
    encoder). A method lists them: ``encoder_losses: [dml, csro]``. See docs/plugins.md.
    """


@hookspec
def register_backbones(register):
    """Register offline RL backbones: ``register(name, factory, options_model)``.

    ``factory(options, problem) -> Backbone`` with ``update(batch, z_q, z, sample_rl=None) ->
    logs`` and ``act(obs, z, deterministic) -> actions``. See ``ertrl_bench.components.Backbone``.
    """


@hookspec
def register_methods(register):
    """Register named methods: ``register(name, MethodSpec or dict)``.

    A method is an encoder, a list of encoder losses and a backbone
    (``ertrl_bench.config.MethodSpec``, e.g. ``{"encoder_losses": ["dml", "csro"]}``), usable in
    a suite by name (``method: ertrl``).
    """


@hookspec
def register_executors(register):
    """Register run executors: ``register(name, factory, options_model)``.

    ``factory(options) -> Executor`` with ``map(run_fn, specs) -> iterator of outcomes`` and
    ``parallel: bool`` (True: the CLI builds the runs' datasets before dispatching them; an
    optional ``builds_data_first: bool`` asks for that too without running in parallel).
    """


@hookspec
def register_suites(register):
    """Register suite files by name: ``register(name, path)``.

    ``path`` is a ``.yaml`` file shipped inside the plugin's package (package data, e.g.
    ``Path(__file__).parent / "suites" / "my-study.yaml"``), so ``ertrl-bench run my-study``
    finds it in any install, not only from a checkout. The built-in suites (``smoke``, ...)
    register through this hook too; a name taken twice is an error naming both plugins.
    """


@hookspec
def register_commands(cli):
    """Optional: add sub-commands to the ``ertrl-bench`` typer app ``cli``."""
