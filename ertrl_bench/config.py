"""Pydantic models for suites and every shared option; the paper's values are the defaults.

Component options (encoder, encoder loss, backbone, env family) live next to their component and
are looked up through the plugin registry. Per-family values live on the family: the schedule's
numbers (latent size, context size, evaluation budget...: ``EnvFamily.schedule_defaults``) and
component options (loss weights, BRAC's alpha: ``EnvFamily.component_defaults``). Both are
resolved once, when ``ertrl_bench.suite_loader.expand_suite`` turns a suite into ``RunSpec`` s:
a suite may leave a schedule number out (``None`` in ``TrainConfig`` / ``EvalConfig``), a
``RunSpec`` holds every number (``ResolvedTrainConfig`` / ``ResolvedEvalConfig``), so the run id
hashes what runs and the run-time code never looks a default up.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    NonNegativeInt,
    PositiveInt,
    field_validator,
    model_validator,
)

from ertrl_bench.options import Strict

# Names that become folder names (suite, method): a safe slug, never a path. No separators, no
# leading dot (so no `.` / `..`), at most 100 characters.
SLUG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}$"
SLUG_HELP = "letters, digits, _ . + - only, not starting with a dot"
# numpy's and torch's seeds are 32-bit in places (np.random.seed rejects >= 2**32)
Seed = Annotated[int, Field(ge=0, lt=2**32)]
# Upper bounds catch typos (an extra zero, 1e12) before hours are spent, not science choices:
# the paper's largest values are far below them (docs/paper.md: 200k steps, batches of 256).
MAX_COUNT = 1_000_000
Count = Annotated[int, Field(gt=0, le=MAX_COUNT)]
MAX_TRAIN_STEPS = 100_000_000  # 500x the paper's 200k steps per run
MetaBatch = Annotated[int, Field(gt=0, le=10_000)]
LatentDim = Annotated[int, Field(gt=0, le=100_000)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")


MAX_NAME_LENGTH = 100  # as in SLUG_PATTERN


def is_safe_name(name: str) -> bool:
    return isinstance(name, str) and re.match(SLUG_PATTERN, name) is not None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a folder, in words (None: it can)."""
    if is_safe_name(name):
        return None
    if isinstance(name, str) and len(name) > MAX_NAME_LENGTH:
        return f"too long ({len(name)} characters, max {MAX_NAME_LENGTH})"
    return f"{name!r} is not a safe name ({SLUG_HELP})"


def _safe_name(name: str) -> str:
    if problem := name_problem(name):
        raise ValueError(problem)  # in words, not pydantic's raw regex
    return name


SafeName = Annotated[str, AfterValidator(_safe_name)]


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


def runs_on_cuda(name: str) -> bool:
    """Whether a run on device ``name`` trains on CUDA; ``auto`` answers for this machine (the
    one that expands the suite, which is the one that runs it)."""
    if name.startswith("cuda"):
        return True
    if name != "auto":
        return False
    import torch

    return torch.cuda.is_available()


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
        old = {"regularizer", "regularizers", "encoder_loss", "dml"}
        if isinstance(value, dict) and (old & set(value)):
            raise ValueError(
                "`encoder_loss`, `dml`, `regularizer` and `regularizers` were replaced by one list,"
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
                ("encoder_losses", c, f"encoder_losses[{k}]")
                for k, c in enumerate(self.encoder_losses)
            ),
            ("backbones", self.backbone, "backbone"),
        ]


class TrainConfig(Strict):
    """Meta-training schedule as a suite writes it (docs/paper.md); ``None`` = the env family's
    paper value (``EnvFamily.schedule_defaults``), filled in at expansion (``resolve_schedule``)."""

    iterations: Count = 100
    steps_per_iteration: Count | None = None  # 2000 (1000 for Cheetah-Vel)
    meta_batch: MetaBatch | None = None  # tasks per step: 16 (all)
    rl_batch: Count = 256  # transitions per task for the RL losses
    context_size: Count | None = None  # context transitions per task: 100..512
    latent_dim: LatentDim | None = None  # size of z: 20 (40 Walker)
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
    # capture the whole train step as one CUDA graph and replay it (ertrl_bench/cuda_graph.py,
    # docs/performance.md). CUDA only: a run whose device is not CUDA (`cpu`, `mps`, `auto` on a
    # machine without one) runs eagerly and its spec records `cuda_graph: false`, so it is the
    # same run (same id, same results folder) as one without the option
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
        if self.steps_per_iteration is None:
            return self  # checked once the family's value is filled in (ResolvedTrainConfig)
        total = self.iterations * self.steps_per_iteration
        if total > MAX_TRAIN_STEPS:
            raise ValueError(
                f"iterations x steps_per_iteration = {total:,} train steps; at most"
                f" {MAX_TRAIN_STEPS:,} (the paper trains 200,000, docs/paper.md)"
            )
        return self


class ProbeConfig(Strict):
    """The end-of-run probe (``eval.probe`` of a suite; ``measures.probe.probe_agent`` runs it);
    defaults = the paper's protocol."""

    enabled: bool = True
    transitions: int = Field(1000, ge=2)  # fresh dataset transitions per task and resample
    test: int = Field(200, ge=1)  # the first ``test`` of each task's draw are test rows
    resamples: int = Field(5, ge=1)
    # "all" = the SVR fits every training row (the paper's 24k); a number caps them (seeded
    # subset). A suite's `null` means "all" too, so a run's spec.json never holds a null.
    svr_max_train_rows: int | Literal["all"] = "all"

    @model_validator(mode="before")
    @classmethod
    def _bool_is_enabled(cls, value):
        """``probe: false`` / ``true`` is short for ``{enabled: false}`` / ``{enabled: true}``
        (the same spec.json, so the same run id)."""
        if isinstance(value, bool):
            return {"enabled": value}
        if not isinstance(value, (dict, ProbeConfig)):
            raise ValueError(
                f"expected false, true or options such as {{svr_max_train_rows: 6000}}, got"
                f" {value!r}"
            )
        return value

    @field_validator("svr_max_train_rows", mode="before")
    @classmethod
    def _null_is_all(cls, value):
        return "all" if value is None else value

    @field_validator("svr_max_train_rows")
    @classmethod
    def _cap_leaves_rows(cls, value):
        if value != "all" and value < 5:
            raise ValueError(f"svr_max_train_rows must be 'all' or at least 5 (got {value})")
        return value

    @model_validator(mode="after")
    def _test_leaves_training_rows(self):
        if self.test >= self.transitions:
            raise ValueError(
                f"probe test ({self.test}) must be less than transitions ({self.transitions})"
            )
        return self


class CheckpointConfig(Strict):
    """Mid-run checkpoints (``ertrl_bench.checkpoint``): how often a run saves its whole
    training state so that a killed run resumes where it was. Not part of the run id: it does
    not change the numbers (a resumed run repeats an uninterrupted one bit for bit on CPU)."""

    enabled: bool = True
    # minutes of a run's wall time between checkpoints (one is also written after every
    # evaluation); fractions are allowed (0.05 = every 3 s)
    every_minutes: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 10.0
    keep: bool = False  # keep the last checkpoint of a finished run (default: removed)


class EvalConfig(Strict):
    """Evaluation protocols (docs/paper.md "Evaluation"; ``ertrl_bench/evaluation.py``).

    A run's budget is counted in transitions: a new episode starts while fewer than
    ``transitions`` are counted and runs to its own end, never cut at the budget (the authors'
    sampler); the score is the last episode's return (deterministic actions).
    Every ``None`` takes the family's value (``EnvFamily.schedule_defaults``), filled in at
    expansion (``resolve_schedule``).
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
    # + steps into the exploration episode) is below this. None = half the run's budget
    # (`transitions`, given or the family's: 300; 400 Ant)
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


class ResolvedTrainConfig(TrainConfig):
    """A run's schedule with every number filled in: what a ``RunSpec`` holds (and hashes)."""

    steps_per_iteration: Count
    meta_batch: MetaBatch
    context_size: Count
    latent_dim: LatentDim


class ResolvedEvalConfig(EvalConfig):
    """A run's evaluation with every number filled in: what a ``RunSpec`` holds (and hashes)."""

    transitions: Count
    online_min_transitions: PositiveInt
    non_prior_min_transitions: PositiveInt
    non_prior_exploration_transitions: PositiveInt
    non_prior_random_transitions: NonNegativeInt


def resolve_schedule(
    train: TrainConfig,
    evalc: EvalConfig,
    family_values: dict[str, dict[str, int]],
    on_cuda: bool,
) -> tuple[ResolvedTrainConfig, ResolvedEvalConfig]:
    """The one place a schedule number left out of a suite gets its value.

    ``family_values`` is the run's ``EnvFamily.schedule_defaults()``: every ``None`` of
    ``train`` / ``eval`` takes the family's value; ``non_prior_random_transitions`` left out is
    half the resolved budget (the authors' rule, not a family value). ``cuda_graph`` is kept
    only where the run's device is CUDA (``on_cuda``): elsewhere the option changes nothing, so
    it must not change the run id. Raises ``ValidationError`` (the resolved values are checked
    like a suite's: bounds, z inferred before the scored episode).
    """

    def filled(cfg: Strict, section: str) -> dict[str, Any]:
        values = cfg.model_dump()
        for key, value in family_values.get(section, {}).items():
            if values.get(key) is None:
                values[key] = value
        return values

    train_values = filled(train, "train")
    train_values["cuda_graph"] = train.cuda_graph and on_cuda
    eval_values = filled(evalc, "eval")
    if eval_values["non_prior_random_transitions"] is None and eval_values["transitions"]:
        eval_values["non_prior_random_transitions"] = eval_values["transitions"] // 2
    return (
        ResolvedTrainConfig.model_validate(train_values),
        ResolvedEvalConfig.model_validate(eval_values),
    )


class RunEntry(Strict):
    """One explicit run of a suite."""

    env: Component
    method: str | MethodSpec
    seed: Seed = 0
    train: dict[str, Any] = Field(default_factory=dict)
    eval: dict[str, Any] = Field(default_factory=dict)
    # merged over the suite's `data:` for this run, e.g. {quality: expert} (docs/data.md)
    data: dict[str, Any] = Field(default_factory=dict)


class Grid(Strict):
    """The cross product env x method x seed."""

    envs: list[Component] = Field(min_length=1)
    methods: list[str | MethodSpec] = Field(min_length=1)
    seeds: list[Seed] = Field(default=[0], min_length=1)


class Suite(Strict):
    """A suite file: shared settings, a grid and/or explicit runs."""

    name: SafeName  # the results folder's name
    description: str = ""
    tier: str = "smoke"  # dataset tier: smoke | small | large | paper (see ertrl_bench.data.tiers)
    # overrides of the tier's fields, and `quality` (which checkpoints' data runs keep:
    # ertrl_bench.data.quality, docs/data.md)
    data: dict[str, Any] = Field(default_factory=dict)
    device: str = "auto"
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
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


#: RunSpec fields the run id leaves out: where and how a run is executed, not what it computes
#: (device, checkpoint policy), and its components' package versions (a patch release must
#: not discard finished work; ``runner._skipped`` flags them instead).
NOT_IN_RUN_ID = ("device", "checkpoint", "versions")


class RunSpec(Strict):
    """Everything that determines one run's numbers; its hash is the run id."""

    suite: str
    env: Component
    method: MethodSpec
    seed: int
    tier: str
    data: dict[str, Any] = Field(default_factory=dict)
    train: ResolvedTrainConfig
    eval: ResolvedEvalConfig
    device: str = "auto"
    checkpoint: CheckpointConfig = CheckpointConfig()  # how often to save (not hashed)
    # "kind/name" -> "package version" of each component's plugin (recorded, not hashed)
    versions: dict[str, str] = Field(default_factory=dict)

    def run_id(self) -> str:
        """Stable id: method-env-seed plus a hash of the resolved spec (device, checkpoint
        policy, versions excluded).

        The method's component params and the train / eval numbers are the *resolved* values
        (family defaults included), so changing a family's default changes the id.
        """
        payload = self.model_dump(mode="json", exclude=set(NOT_IN_RUN_ID))
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.method.name}-{self.env.type}-s{self.seed}-{digest}"

    def computation_key(self, budget: bool = True) -> str:
        """What the run computes: the run id's payload without the suite's name (which only
        names its folder). Two runs with equal keys give the same numbers (on CPU, bit for
        bit), so ``run --reuse`` copies one finished run for the other (``ertrl_bench.reuse``).

        ``budget=False`` also leaves out ``train.iterations``: runs with equal keys then differ
        at most in their budget, and the shorter one's steps are the first steps of the longer
        (``ertrl_bench.extend`` starts the longer from the shorter's checkpoint)."""
        payload = self.model_dump(mode="json", exclude={"suite", *NOT_IN_RUN_ID})
        if not budget:
            del payload["train"]["iterations"]
        return json.dumps(payload, sort_keys=True)
