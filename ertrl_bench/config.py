"""Pydantic models for suites and every shared option; the paper's values are the defaults.

Component options (encoder, regularizer, backbone, env family) live next to their component and
are looked up through the plugin registry; per-family paper values (latent size, context size,
...) live on the family (``ertrl_bench.envs.base.FamilyHParams``); per-family component options
(loss weights, BRAC's alpha) live on the family too (``EnvFamily.component_defaults``) and are
resolved into each RunSpec by ``ertrl_bench.suite_loader.expand_suite``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveInt,
    model_validator,
)

from ertrl_bench.analysis.probe import ProbeConfig
from ertrl_bench.options import Strict  # noqa: F401  (the one base; re-exported here)

# Names that become folder names (suite, method): a safe slug, never a path. No separators, no
# leading dot (so no `.` / `..`), at most 100 characters.
SLUG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}$"
SLUG_HELP = "letters, digits, _ . + - only, not starting with a dot"
SafeName = Annotated[str, Field(pattern=SLUG_PATTERN)]
# numpy's and torch's seeds are 32-bit in places (np.random.seed rejects >= 2**32)
Seed = Annotated[int, Field(ge=0, lt=2**32)]
# Upper bounds catch typos (an extra zero, 1e12) before hours are spent, not science choices:
# the paper's largest values are far below them (docs/paper.md: 200k steps, batches of 256).
MAX_COUNT = 1_000_000
Count = Annotated[int, Field(gt=0, le=MAX_COUNT)]
MAX_TRAIN_STEPS = 100_000_000  # 500x the paper's 200k steps per run
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")


def is_safe_name(name: str) -> bool:
    return isinstance(name, str) and re.match(SLUG_PATTERN, name) is not None


def device_problem(name: str) -> str | None:
    """Why ``name`` cannot be used as a torch device on this machine, or None."""
    if not isinstance(name, str) or not DEVICE_PATTERN.match(name):
        return (
            f"unknown device {name!r}; use auto (CUDA when present, else CPU), cpu, cuda,"
            " cuda:N or mps"
        )
    if name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return (
                f"device {name!r}: torch sees no CUDA GPU on this machine; use `auto`"
                " (CUDA when present, else CPU), the portable choice"
            )
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            return f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)"
    if name == "mps":
        import torch

        if not torch.backends.mps.is_available():
            return "device 'mps': not available on this machine; use `auto`"
    return None


class Component(Strict):
    """A plugin component in a suite: ``name`` or ``{type: name, params: {...}}`` (d3rlpy's shape)."""

    type: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value):
        return {"type": value} if isinstance(value, str) else value


class MethodSpec(Strict):
    """A method: an encoder, a list of encoder losses and a backbone (see ``ertrl_bench.methods``).

    ``encoder_losses`` are summed into the encoder's objective each train step (FOCAL's ``dml``
    is one of them, like ``csro``); an empty list and ``encoder_through_q`` is Offline PEARL.
    """

    name: str | None = None
    encoder: Component = Component(type="mlp")
    encoder_losses: list[Component] = Field(default_factory=lambda: [Component(type="dml")])
    backbone: Component = Component(type="brac")
    # Offline PEARL: the critic's loss also trains the encoder. All other methods detach z.
    encoder_through_q: bool = False

    @model_validator(mode="before")
    @classmethod
    def _no_old_keys(cls, value):
        if isinstance(value, dict) and ({"regularizer", "encoder_loss", "dml"} & set(value)):
            raise ValueError(
                "`encoder_loss`, `dml` and `regularizer` were replaced by one list,"
                " `encoder_losses`, e.g. `encoder_losses: [dml, {type: csro, params: {weight: 5}}]`"
                " (FOCAL's DML is the `dml` loss)"
            )
        return value

    @model_validator(mode="after")
    def _unique_losses(self):
        types = [c.type for c in self.encoder_losses]
        dup = sorted({t for t in types if types.count(t) > 1})
        if dup:
            raise ValueError(f"encoder_losses lists {', '.join(dup)} more than once")
        return self

    def default_name(self) -> str:
        return "-".join([*(c.type for c in self.encoder_losses), self.backbone.type])

    def components(self) -> list[tuple[str, Component, str]]:
        """``(registry kind, component, suite path)`` of every part."""
        return [
            ("encoders", self.encoder, "encoder"),
            *(
                ("regularizers", c, f"encoder_losses[{k}]")
                for k, c in enumerate(self.encoder_losses)
            ),
            ("backbones", self.backbone, "backbone"),
        ]


class TrainConfig(Strict):
    """Meta-training schedule (docs/paper.md); ``None`` = the env family's paper value."""

    iterations: Count = 100
    steps_per_iteration: Count | None = None  # 2000 (1000 for Cheetah-Vel)
    meta_batch: Annotated[int, Field(gt=0, le=10_000)] | None = None  # tasks per step: 16 (all)
    rl_batch: Count = 256  # transitions per task for the RL losses
    context_size: Count | None = None  # context transitions per task: 100..512
    latent_dim: Annotated[int, Field(gt=0, le=100_000)] | None = None  # size of z: 20 (40 Walker)
    encoder_lr: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 3e-4
    eval_every: Count = 1  # iterations between evaluations
    final_evals: Count = 5  # the reported score is the mean of the last N evaluations
    deterministic: bool = True  # torch deterministic algorithms (CPU runs repeat bit for bit)
    # authors: every trajectory's last transition is terminal (time-limit ends too); "env": only
    # true terminations (ertrl_bench.batch.TaskDataset)
    terminals: Literal["trajectory_end", "env"] = "trajectory_end"
    # how every built-in network starts: "rlkit" (the authors', all their networks: hidden
    # weights uniform in +-1/sqrt(output size), biases 0.1, output layers +-3e-3, policy heads
    # +-1e-3, so z, log-std and Q start near 0) or "torch" (PyTorch's defaults). ertrl_bench/nn.py
    init: Literal["rlkit", "torch"] = "rlkit"
    compile: bool = False  # torch.compile the backbone's losses (GPU; docs/performance.md)
    # capture the whole train step as one CUDA graph and replay it (CUDA only; on other devices
    # the step runs eagerly: ertrl_bench/cuda_graph.py, docs/performance.md)
    cuda_graph: bool = False

    @model_validator(mode="after")
    def _one_gpu_speed_option(self):
        if self.compile and self.cuda_graph:
            raise ValueError(
                "compile and cuda_graph together are not supported (untested); use cuda_graph,"
                " the faster on a GPU (docs/performance.md), and set compile: false"
            )
        return self

    @model_validator(mode="after")
    def _total_steps_bounded(self):
        total = self.iterations * (self.steps_per_iteration or 2000)
        if total > MAX_TRAIN_STEPS:
            raise ValueError(
                f"iterations x steps_per_iteration = {total:,} train steps; at most"
                f" {MAX_TRAIN_STEPS:,} (the paper trains 200,000, docs/paper.md)"
            )
        return self


class EvalConfig(Strict):
    """Evaluation protocols (docs/paper.md "Evaluation"; ``ertrl_bench/evaluation.py``).

    A run's budget is counted in transitions: a new episode starts while fewer than
    ``transitions`` are counted and runs to its own end, never cut at the budget (the authors'
    sampler); the score is the last episode's return (deterministic actions).
    Every ``None`` takes the family's value.
    """

    runs_per_task: Annotated[int, Field(gt=0, le=10_000)] = 2
    # budget-counted transitions of one run: None = the family's (600; 800 for Ant families)
    transitions: Count | None = None
    # offline: dataset transitions of the task that join the context before each episode
    offline_context_per_episode: Count = 200
    # online: z = 0 until this many of the run's own transitions exist, then z is inferred from
    # all of them before each episode. None = 2 x the family's horizon (400; the authors'
    # num_exp_traj_eval x max_path_length)
    online_min_transitions: PositiveInt | None = None
    # non_prior: z = 0 until this many evaluation transitions are counted, then z is inferred
    # from the exploration context after each evaluation episode. None = 2 x horizon (400)
    non_prior_min_transitions: PositiveInt | None = None
    # non_prior: exploration transitions (whole episodes) before each evaluation episode.
    # None = the family's horizon (200)
    non_prior_exploration_transitions: PositiveInt | None = None
    # non_prior: an exploration action is uniform random while (evaluation transitions counted
    # + steps into the exploration episode) is below this. None = half the budget (300; 400 Ant)
    non_prior_random_transitions: NonNegativeInt | None = None
    protocols: list[Literal["offline", "online", "non_prior"]] = ["offline", "online", "non_prior"]
    splits: list[Literal["train", "iid", "moderate", "extreme"]] = [
        "train",
        "iid",
        "moderate",
        "extreme",
    ]
    probe: ProbeConfig = ProbeConfig()  # the end-of-run z probe (docs/paper.md "Probe")

    @model_validator(mode="after")
    def _z_gets_inferred(self):
        for name in ("online_min_transitions", "non_prior_min_transitions"):
            value = getattr(self, name)
            if self.transitions is not None and value is not None and value >= self.transitions:
                raise ValueError(
                    f"{name} ({value}) must be less than transitions ({self.transitions}):"
                    " otherwise z is never inferred before the scored episode"
                )
        return self


class RunEntry(Strict):
    """One explicit run of a suite."""

    env: Component
    method: str | MethodSpec
    seed: Seed = 0
    train: dict[str, Any] = Field(default_factory=dict)
    eval: dict[str, Any] = Field(default_factory=dict)


class Grid(Strict):
    """The cross product env x method x seed."""

    envs: list[Component] = Field(min_length=1)
    methods: list[str | MethodSpec] = Field(min_length=1)
    seeds: list[Seed] = Field(default=[0], min_length=1)


class Suite(Strict):
    """A suite file: shared settings, a grid and/or explicit runs."""

    name: SafeName  # the results folder's name
    description: str = ""
    tier: str = "smoke"  # dataset tier: smoke | small | paper (see ertrl_bench.data.tiers)
    data: dict[str, Any] = Field(default_factory=dict)  # overrides of the tier's fields
    device: str = "auto"
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    # Options for every component of a type, e.g. {brac: {hidden: [64, 64]}}: how a suite
    # shrinks the networks of named methods (the smoke suite does) without redefining them.
    component_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    grid: Grid | None = None
    runs: list[RunEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_runs(self):
        if self.grid is None and not self.runs:
            raise ValueError("a suite needs a `grid:` or a non-empty `runs:` list")
        return self


class RunSpec(Strict):
    """Everything that determines one run's numbers; its hash is the run id."""

    suite: str
    env: Component
    method: MethodSpec
    seed: int
    tier: str
    data: dict[str, Any] = Field(default_factory=dict)
    train: TrainConfig
    eval: EvalConfig
    device: str = "auto"
    # "kind/name" -> "package version" of each component's plugin (recorded, not hashed)
    versions: dict[str, str] = Field(default_factory=dict)

    def run_id(self) -> str:
        """Stable id: method-env-seed plus a hash of the resolved spec (device, versions excluded).

        The method's component params are the *resolved* options (family defaults included), so
        changing a family's default weight changes the id.
        """
        payload = self.model_dump(mode="json", exclude={"device", "versions"})
        for section, key, default in ID_NEUTRAL_DEFAULTS:  # options added later: at their
            if payload[section].get(key) == default:  # default, the ids of earlier runs hold
                del payload[section][key]
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.method.name}-{self.env.type}-s{self.seed}-{digest}"


# (section, field, default): spec fields added after results were published; a run at the
# default keeps the id it had before the field existed (results/ stays resumable)
ID_NEUTRAL_DEFAULTS = [("train", "cuda_graph", False)]

# Loading, validating and expanding a suite file live in ``ertrl_bench.suite_loader``; these
# names stay importable from here for plugins written against earlier versions.
_MOVED = {
    "load_suite",
    "load_suite_file",
    "expand_suite",
    "format_validation_error",
    "builtin_suite_path",
    "read_suite_yaml",
}


def __getattr__(name: str):
    if name in _MOVED:
        from ertrl_bench import suite_loader

        return getattr(suite_loader, name)
    raise AttributeError(f"module 'ertrl_bench.config' has no attribute {name!r}")
