"""Pydantic models for suites and every shared option; the paper's values are the defaults.

Component options (encoder, regularizer, backbone, env family) live next to their component and
are looked up through the plugin registry; per-family paper values (latent size, context size,
loss weights...) live on the family (``ertrl_bench.envs.base.FamilyHParams``), and an option set
to ``None`` means "the family's paper value".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from ertrl_bench.analysis.probe import ProbeConfig
from ertrl_bench.errors import ConfigError, ErtrlError


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt option must never be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Component(Strict):
    """A plugin component in a suite: ``name`` or ``{type: name, params: {...}}`` (d3rlpy's shape)."""

    type: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value):
        return {"type": value} if isinstance(value, str) else value


class DMLOptions(Strict):
    """FOCAL's distance-metric loss on the pooled z of a meta-batch (PAPER.md: weight 10, eps 1e-3)."""

    weight: float = Field(10.0, ge=0)
    eps: PositiveFloat = 1e-3


class MethodSpec(Strict):
    """A method: encoder + encoder loss + regularizer + backbone (see ``ertrl_bench.methods``)."""

    name: str | None = None
    encoder: Component = Component(type="mlp")
    encoder_loss: Literal["dml", "none"] = "dml"
    dml: DMLOptions = DMLOptions()
    regularizer: Component = Component(type="none")
    backbone: Component = Component(type="brac")
    # Offline PEARL: the critic's loss also trains the encoder. All other methods detach z.
    encoder_through_q: bool = False


class TrainConfig(Strict):
    """Meta-training schedule (PAPER.md); ``None`` = the env family's paper value."""

    iterations: PositiveInt = 100
    steps_per_iteration: PositiveInt | None = None  # 2000 (1000 for Cheetah-Vel)
    meta_batch: PositiveInt | None = None  # tasks per train step: 16 (every family)
    rl_batch: PositiveInt = 256  # transitions per task for the RL losses
    context_size: PositiveInt | None = None  # context transitions per task: 100..512
    latent_dim: PositiveInt | None = None  # size of z: 20 (40 for Walker)
    encoder_lr: PositiveFloat = 3e-4
    eval_every: PositiveInt = 1  # iterations between evaluations
    final_evals: PositiveInt = 5  # the reported score is the mean of the last N evaluations
    deterministic: bool = True  # torch deterministic algorithms (CPU runs repeat bit for bit)
    # authors: every trajectory's last transition is terminal (time-limit ends too); "env": only
    # true terminations (ertrl_bench.batch.TaskDataset)
    terminals: Literal["trajectory_end", "env"] = "trajectory_end"
    compile: bool = False  # torch.compile the backbone's losses (GPU; README "Speed")


class EvalConfig(Strict):
    """Evaluation protocols (docs/paper.md "Evaluation"; ``ertrl_bench/evaluation.py``).

    A run's budget is counted in transitions: whole episodes until ``transitions`` are spent
    (the last one cut at it); the score is the last episode's return (deterministic actions).
    Every ``None`` takes the family's value.
    """

    runs_per_task: PositiveInt = 2
    # budget-counted transitions of one run: None = the family's (600; 800 for Ant families)
    transitions: PositiveInt | None = None
    # offline: dataset transitions of the task that join the context before each episode
    offline_context_per_episode: PositiveInt = 200
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
    seed: NonNegativeInt = 0
    train: dict[str, Any] = Field(default_factory=dict)
    eval: dict[str, Any] = Field(default_factory=dict)


class Grid(Strict):
    """The cross product env x method x seed."""

    envs: list[Component] = Field(min_length=1)
    methods: list[str | MethodSpec] = Field(min_length=1)
    seeds: list[NonNegativeInt] = Field(default=[0], min_length=1)


class Suite(Strict):
    """A suite file: shared settings, a grid and/or explicit runs."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
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

    def run_id(self) -> str:
        """Stable id: method-env-seed plus a hash of the resolved spec (device excluded)."""
        payload = self.model_dump(mode="json", exclude={"device"})
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.method.name}-{self.env.type}-s{self.seed}-{digest}"


# ---------------------------------------------------------------------------------------------
# Loading and validation


def _loc_to_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "MethodSpec", "function-before[_from_name()]") or "[" in str(part):
            continue  # pydantic's union-branch labels are noise for a user
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def format_validation_error(exc: ValidationError, prefix: str = "") -> list[str]:
    problems = []
    seen = set()
    for err in exc.errors():
        path = _loc_to_path(tuple(err["loc"]))
        if prefix:
            path = prefix if path == "(top level)" else f"{prefix}.{path}"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check its spelling)"
        line = f"{path}: {msg}"
        if line not in seen:
            seen.add(line)
            problems.append(line)
    return problems


def builtin_suite_path(name: str) -> Path | None:
    path = Path(__file__).parent / "suites" / f"{name}.yaml"
    return path if path.exists() else None


def load_suite_file(path: str | Path) -> tuple[Suite, str]:
    """Read and structurally validate a suite; a bare name like ``smoke`` finds a built-in."""
    p = Path(path)
    if not p.exists():
        builtin = builtin_suite_path(str(path))
        if builtin is None:
            raise ErtrlError(
                f"{path}: no such suite file (built-in suites: smoke, iid, ood, paper;"
                " give a path to a .yaml file or one of those names)"
            )
        p = builtin
    source = str(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"malformed YAML at{where}: {problem}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(source, ["(top level): a suite must be a YAML mapping with a `name:`"])
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, format_validation_error(exc)) from None
    return suite, source


def _merge(base: BaseModel, overrides: dict[str, Any]) -> dict[str, Any]:
    merged = base.model_dump()
    merged.update(overrides)
    return merged


def _with_params(comp: Component, component_params: dict[str, dict]) -> Component:
    extra = component_params.get(comp.type)
    return comp.model_copy(update={"params": {**extra, **comp.params}}) if extra else comp


def expand_suite(suite: Suite, source: str = "suite") -> list[RunSpec]:
    """Resolve methods by name, check every plugin name and option, and expand the grid.

    Every problem is collected and raised together, each with its YAML path.
    """
    from ertrl_bench.plugins import get_registry, unknown_name_message

    registry = get_registry()
    problems: list[str] = []

    def check_component(kind: str, comp: Component, path: str) -> None:
        table = registry.entries[kind]
        if comp.type not in table:
            problems.append(f"{path}: " + unknown_name_message(kind, comp.type, sorted(table)))
            return
        options = table[comp.type].options
        if options is not None:
            try:
                options.model_validate(comp.params)
            except ValidationError as exc:
                problems.extend(format_validation_error(exc, prefix=f"{path}.params"))

    def resolve_method(method: str | MethodSpec, path: str) -> MethodSpec | None:
        if isinstance(method, str):
            table = registry.entries["methods"]
            if method not in table:
                problems.append(
                    f"{path}: " + unknown_name_message("methods", method, sorted(table))
                )
                return None
            spec = table[method].factory.model_copy(update={"name": method})
        else:
            spec = method
            if spec.name is None:
                spec = spec.model_copy(
                    update={"name": f"{spec.regularizer.type}-{spec.backbone.type}"}
                )
        spec = spec.model_copy(
            update={
                part: _with_params(getattr(spec, part), suite.component_params)
                for part in ("encoder", "regularizer", "backbone")
            }
        )
        check_component("encoders", spec.encoder, f"{path}.encoder")
        check_component("regularizers", spec.regularizer, f"{path}.regularizer")
        check_component("backbones", spec.backbone, f"{path}.backbone")
        return spec

    from ertrl_bench.data.tiers import TIERS, resolve_tier

    all_types = {
        n for kind in ("encoders", "regularizers", "backbones") for n in registry.entries[kind]
    }
    for name in suite.component_params:
        if name not in all_types:
            problems.append(
                f"component_params.{name}: no encoder, regularizer or backbone is named {name!r};"
                f" available: {', '.join(sorted(all_types))}"
            )
    if suite.tier not in TIERS:
        problems.append(f"tier: unknown tier {suite.tier!r}; available: {', '.join(TIERS)}")

    triples: list[tuple[Component, MethodSpec | None, int, TrainConfig, EvalConfig]] = []
    if suite.grid is not None:
        for i, env in enumerate(suite.grid.envs):
            check_component("envs", env, f"grid.envs[{i}]")
        methods = [
            resolve_method(m, f"grid.methods[{j}]") for j, m in enumerate(suite.grid.methods)
        ]
        for env in suite.grid.envs:
            for m in methods:
                for seed in suite.grid.seeds:
                    triples.append((env, m, seed, suite.train, suite.eval))
    for i, run in enumerate(suite.runs):
        check_component("envs", run.env, f"runs[{i}].env")
        m = resolve_method(run.method, f"runs[{i}].method")
        try:
            train = TrainConfig.model_validate(_merge(suite.train, run.train))
            evalc = EvalConfig.model_validate(_merge(suite.eval, run.eval))
        except ValidationError as exc:
            problems.extend(format_validation_error(exc, prefix=f"runs[{i}]"))
            continue
        triples.append((run.env, m, run.seed, train, evalc))

    if not problems and suite.tier in TIERS:
        for env in {t[0].type for t in triples}:
            try:
                resolve_tier(suite.tier, registry.get("envs", env).factory, suite.data)
            except ErtrlError as exc:
                problems.append(f"data: {exc}")
    if problems:
        raise ConfigError(source, problems)

    specs = [
        RunSpec(
            suite=suite.name,
            env=env,
            method=m,
            seed=seed,
            tier=suite.tier,
            data=suite.data,
            train=train,
            eval=evalc,
            device=suite.device,
        )
        for env, m, seed, train, evalc in triples
    ]
    seen: dict[str, int] = {}
    for k, s in enumerate(specs):
        rid = s.run_id()
        if rid in seen:
            problems.append(f"runs: run {k} duplicates run {seen[rid]} ({rid})")
        seen[rid] = k
    if problems:
        raise ConfigError(source, problems)
    return specs


def load_suite(path: str | Path) -> tuple[Suite, list[RunSpec]]:
    suite, source = load_suite_file(path)
    return suite, expand_suite(suite, source)
