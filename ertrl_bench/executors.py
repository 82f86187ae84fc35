"""Executors run a list of RunSpecs: ``local`` (in-process, sequential) and ``ray`` (optional).

An executor is ``factory(options) -> obj`` with ``map(fn, specs) -> iterator of outcomes`` in
completion order. ``fn`` is a picklable callable taking one RunSpec. An executor whose runs go
on at the same time sets ``parallel = True``: the CLI then builds the datasets the runs need
once, before dispatching them, instead of letting concurrent runs build the same one.
Options come from ``ertrl-bench run --executor ray --executor-opt num_cpus=2 ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pydantic import NonNegativeInt, PositiveFloat

from ertrl_bench.config import Strict
from ertrl_bench.errors import ErtrlError
from ertrl_bench.plugins import hookimpl


class LocalOptions(Strict):
    """No options."""


class LocalExecutor:
    """One run after another in this process (progress bars stay readable)."""

    parallel = False

    def __init__(self, options: LocalOptions | None = None):
        self.options = options

    def map(self, fn: Callable, specs: list) -> Iterator:
        for spec in specs:
            yield fn(spec)


class RayOptions(Strict):
    address: str | None = None  # None: start a local Ray; "auto": join a running cluster
    num_cpus: PositiveFloat = 1.0  # per run
    num_gpus: float = 0.0  # per run (e.g. 0.25 to pack four runs on a GPU)
    max_retries: NonNegativeInt = 1


class RayExecutor:
    """One Ray task per run; results come back as they finish (``ray.wait``)."""

    parallel = True

    def __init__(self, options: RayOptions | None = None):
        self.options = options or RayOptions()
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ErtrlError("the ray executor needs Ray: pip install 'ertrl-bench[ray]'") from None

    def map(self, fn: Callable, specs: list) -> Iterator:
        import ray

        o = self.options
        if not ray.is_initialized():
            ray.init(address=o.address, ignore_reinit_error=True, log_to_driver=False)
        # ray.remote takes plain functions only (fn is often a functools.partial)
        remote = ray.remote(_call).options(
            num_cpus=o.num_cpus, num_gpus=o.num_gpus, max_retries=o.max_retries
        )
        pending = [remote.remote(fn, spec) for spec in specs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])


def _call(fn: Callable, spec):
    return fn(spec)


@hookimpl
def register_executors(register):
    register("local", LocalExecutor, LocalOptions)
    register("ray", RayExecutor, RayOptions)
