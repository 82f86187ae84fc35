"""Reading a suite file, validating it and expanding it into runs: ``load_suite`` is the door.

``read_suite_yaml`` reads the YAML (duplicate keys, binary and non-UTF-8 files are errors);
``load_suite_file`` validates its structure and, when that fails, still checks every plugin name,
tier and device, so one ``validate`` shows every mistake; ``expand_suite`` resolves named methods
and per-family component defaults and expands the grid into ``RunSpec`` s (the models live in
``ertrl_bench.config``).
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ertrl_bench.config import (
    Component,
    EvalConfig,
    MethodSpec,
    ResolvedEvalConfig,
    ResolvedTrainConfig,
    RunSpec,
    Suite,
    TrainConfig,
    device_problem,
    is_safe_name,
    name_problem,
    resolve_schedule,
    runs_on_cuda,
)
from ertrl_bench.errors import ConfigError, ErtrlError
from ertrl_bench.options import format_validation_error
from ertrl_bench.plugins import closest_name, get_registry, hookimpl

BUILTIN_SUITES_DIR = Path(__file__).parent / "suites"


def builtin_suite_path(name: str) -> Path | None:
    path = BUILTIN_SUITES_DIR / f"{name}.yaml"
    return path if path.exists() else None


@hookimpl
def register_suites(register):
    """The suites shipped with ertrl-bench, by name, through the hook plugins use for theirs."""
    for path in sorted(BUILTIN_SUITES_DIR.glob("*.yaml")):
        register(path.stem, path)


def suite_names() -> dict[str, str]:
    """Every suite usable by name (built-in and plugins'): name -> the plugin that registered it."""
    return {n: e.plugin for n, e in sorted(get_registry().entries["suites"].items())}


def named_suite_path(name: str) -> Path | None:
    """The file of the suite registered as ``name``, or None."""
    entry = get_registry().entries["suites"].get(name)
    return None if entry is None else entry.factory


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error (not last-wins)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line)
                except TypeError:
                    continue  # an unhashable key: the base loader says so
                if first != key_node.start_mark.line:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first given at line {first + 1}); a key may"
                        " appear once per mapping",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


def builtin_suite_names() -> list[str]:
    """The suites shipped in ``ertrl_bench/suites`` (usable by name: ``ertrl-bench run smoke``)."""
    return sorted(p.stem for p in BUILTIN_SUITES_DIR.glob("*.yaml"))


def _no_such_suite(path: str | Path) -> str:
    names = suite_names()
    by_plugin: dict[str, list[str]] = {}
    for name, plugin in names.items():
        by_plugin.setdefault(plugin, []).append(name)
    listed = f"built-in suites: {', '.join(by_plugin.pop(__name__, []))}"
    for plugin, theirs in by_plugin.items():
        listed += f"; from plugin {plugin}: {', '.join(theirs)}"
    stem = Path(path).stem
    hint = (
        f". Did you mean the suite {stem!r} (`ertrl-bench run {stem}`)?"
        if stem in names and stem != str(path)
        else closest_name(str(path), list(names))
    )
    return (
        f"{path}: no such suite file ({listed}; give a path to a .yaml file or one of those"
        f" names){hint}"
    )


def read_suite_yaml(path: str | Path) -> tuple[Any, str]:
    """The parsed YAML of a suite file (or built-in name) and the name to report it by."""
    p = Path(path)
    if not p.exists():
        named = named_suite_path(str(path)) if is_safe_name(str(path)) else None
        if named is None:
            raise ErtrlError(_no_such_suite(path))
        p = named
    source = str(path)
    data = _read_suite_bytes(p, source)
    if b"\0" in data:
        raise ConfigError(source, ["a binary file, not a YAML suite"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            source,
            [
                f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start});"
                " save the suite as UTF-8"
            ],
        ) from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"malformed YAML at{where}: {problem}"]) from None
    except RecursionError:
        raise ConfigError(source, ["malformed YAML: nested too deeply"]) from None
    _check_expanded_size(raw, source)
    return raw, source


#: A suite is a few KB; anything near this is not one (and is never read whole).
MAX_SUITE_BYTES = 1 << 20
#: Values a suite may hold once YAML aliases are expanded (a large grid is a few thousand): an
#: "alias bomb" of ten short lines would otherwise expand to billions during validation.
MAX_SUITE_VALUES = 100_000


def _read_suite_bytes(p: Path, source: str) -> bytes:
    """The suite file's bytes, bounded: a regular file of at most ``MAX_SUITE_BYTES``.

    Opened non-blocking and checked before reading, so a FIFO without a writer or a device such
    as ``/dev/zero`` is refused at once instead of hanging or reading without end.
    """
    if p.is_dir():
        raise ErtrlError(f"{source}: is a folder, not a suite file (give a .yaml file)")
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ErtrlError(
                    f"{source}: not a regular file (a FIFO, device or socket); give a .yaml file"
                )
            data = f.read(MAX_SUITE_BYTES + 1)
    except OSError as exc:
        raise ErtrlError(f"{source}: cannot read the suite file ({exc.strerror or exc})") from None
    if len(data) > MAX_SUITE_BYTES:
        raise ConfigError(
            source, [f"larger than {MAX_SUITE_BYTES >> 20} MiB: not a suite file (a few KB)"]
        )
    return data


def _check_expanded_size(raw: Any, source: str) -> None:
    """Refuse YAML whose aliases expand past ``MAX_SUITE_VALUES`` values, or refer to
    themselves, before anything walks the expanded tree. Linear in the file's own size: a
    value shared through an alias is sized once."""
    sizes: dict[int, int | None] = {}  # id -> expanded size (None: being sized: a cycle)

    def size(value: Any) -> int:
        if not isinstance(value, (dict, list)):
            return 1
        key = id(value)
        if key in sizes:
            if sizes[key] is None:
                raise ConfigError(source, ["a YAML alias refers to its own anchor (a cycle)"])
            return sizes[key]
        sizes[key] = None
        children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        total = 1 + sum(size(c) for c in children)
        if total > MAX_SUITE_VALUES:
            raise ConfigError(
                source,
                [
                    f"YAML aliases expand to more than {MAX_SUITE_VALUES:,} values (an alias"
                    " bomb?); write the suite without aliases nested in aliases"
                ],
            )
        sizes[key] = total
        return total

    try:
        size(raw)
    except RecursionError:
        raise ConfigError(source, ["malformed YAML: nested too deeply"]) from None


def _nonfinite_problems(value: Any, path: str = "") -> list[str]:
    """Every ``.inf`` / ``.nan`` written in the suite: no option of ours is meant to be one."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{path or '(top level)'}: {value} is not a finite number"]
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _nonfinite_problems(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _nonfinite_problems(v, f"{path}[{i}]")
    return out


def _raw_name_problems(raw: dict) -> list[str]:
    """Unknown plugin names, tier and device of a suite that fails structural validation.

    So one ``validate`` shows every mistake: structure, values and names, all at once. The
    checks are ``expand_suite`` 's own, applied to whatever parts of the YAML are well formed.
    """
    registry = get_registry()
    problems: list[str] = []

    def component(kind: str, value: Any, path: str) -> None:
        try:
            comp = Component.model_validate(value)
        except ValidationError:
            return  # reported by the structural pass
        _check_component(registry, kind, comp, path, problems, check_options=False)

    def method(value: Any, path: str) -> None:
        if isinstance(value, str):
            _registered_method(registry, value, path, problems)
        elif isinstance(value, dict):
            for part, kind in _METHOD_PARTS:
                if part in value:
                    component(kind, value[part], f"{path}.{part}")
            losses = value.get("encoder_losses")
            for k, loss in enumerate(losses if isinstance(losses, list) else []):
                component("encoder_losses", loss, f"{path}.encoder_losses[{k}]")
            name = value.get("name")
            if isinstance(name, str) and not is_safe_name(name):
                problems.append(f"{path}.name: {name_problem(name)}")

    grid = raw.get("grid")
    if isinstance(grid, dict):
        envs = grid.get("envs")
        for i, env in enumerate(envs if isinstance(envs, list) else []):
            component("envs", env, f"grid.envs[{i}]")
        methods = grid.get("methods")
        for j, m in enumerate(methods if isinstance(methods, list) else []):
            method(m, f"grid.methods[{j}]")
    runs = raw.get("runs")
    for i, run in enumerate(runs if isinstance(runs, list) else []):
        if isinstance(run, dict):
            if "env" in run:
                component("envs", run["env"], f"runs[{i}].env")
            if "method" in run:
                method(run["method"], f"runs[{i}].method")
    tier, device = raw.get("tier", "smoke"), raw.get("device", "auto")
    if isinstance(tier, str) and isinstance(device, str):
        _check_tier_and_device(tier, device, problems)
    return problems


_METHOD_PARTS = (
    ("encoder", "encoders"),
    ("backbone", "backbones"),
)


def _dedupe(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))


def _load(path: str | Path) -> tuple[Suite | None, str, list[str], Any]:
    raw, source = read_suite_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(source, ["(top level): a suite must be a YAML mapping with a `name:`"])
    problems: list[str] = []
    suite = None
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        problems += format_validation_error(exc, model=Suite)
    reported = {line.partition(": ")[0] for line in problems}
    nonfinite = [p for p in _nonfinite_problems(raw) if p.partition(": ")[0] not in reported]
    problems += nonfinite
    if suite is None:
        problems += _raw_name_problems(raw)
    elif problems:  # the structure is fine: the full checks can run too
        try:
            expand_suite(suite, source)
        except ConfigError as exc:
            said = {line.partition(": ")[0] for line in nonfinite}  # a .nan: one line, not two
            problems += [p for p in exc.problems if p.partition(": ")[0] not in said]
    return suite, source, _dedupe(problems), raw


def load_suite_file(path: str | Path) -> tuple[Suite, str]:
    """Read and structurally validate a suite; a bare name like ``smoke`` finds a built-in.

    When the structure is wrong, unknown names are reported with it (every mistake at once).
    """
    suite, source, problems, _ = _load(path)
    if problems:
        raise ConfigError(source, problems)
    return suite, source


def _merge(base: BaseModel, overrides: dict[str, Any]) -> dict[str, Any]:
    merged = base.model_dump()
    merged.update(overrides)
    return merged


@dataclass
class _Entry:
    """One run as the suite writes it, before anything is resolved."""

    path: str  # YAML path for errors: "grid" or "runs[i]"
    env: Component
    env_ok: bool  # its name and options are valid (else reported)
    method: MethodSpec | None  # None: unknown or invalid (reported)
    method_path: str
    seed: int
    train: TrainConfig
    eval: EvalConfig
    data: dict[str, Any]  # the suite's `data:` with the run's own merged over it


def _env_key(env: Component) -> str:
    return json.dumps(env.model_dump(mode="json"), sort_keys=True)


def _check_component(
    registry, kind: str, comp: Component, path: str, problems: list[str], check_options=True
) -> bool:
    """Whether ``comp`` names a registered ``kind`` (with ``check_options``: and its params are
    valid options); each problem is added with its YAML path."""
    from ertrl_bench.plugins import unknown_name_message

    table = registry.entries[kind]
    if comp.type not in table:
        problems.append(f"{path}: " + unknown_name_message(kind, comp.type, sorted(table)))
        return False
    options = table[comp.type].options
    if options is not None and check_options:
        try:
            options.model_validate(comp.params)
        except ValidationError as exc:
            problems.extend(format_validation_error(exc, f"{path}.params", options))
            return False
    return True


def _named_method(
    registry,
    method: str | MethodSpec,
    path: str,
    names: dict[str, tuple[str, str]],
    problems: list[str],
) -> MethodSpec | None:
    """A suite's method as a named ``MethodSpec``: a registered name looked up, an inline
    method given its default name if it has none. None when the name is unsafe or already
    names a different method of the suite (``names``: name -> first YAML path and
    definition); reported. An unknown part is reported too, but the method is kept so that
    its known parts' options are still checked, later, once merged with the family's
    (``_resolve_components``): one error never hides another."""
    if isinstance(method, str):
        registered = _registered_method(registry, method, path, problems)
        if registered is None:
            return None
        try:
            spec = MethodSpec.model_validate(
                registered.model_dump() if isinstance(registered, BaseModel) else registered
            )
        except ValidationError as exc:
            problems.extend(format_validation_error(exc, f"{path} ({method})", MethodSpec))
            return None
        spec = spec.model_copy(update={"name": method})
    else:
        spec = method
        if spec.name is None:
            spec = spec.model_copy(update={"name": spec.default_name()})
    if not is_safe_name(spec.name):
        problems.append(f"{path}.name: {name_problem(spec.name)}; it names the run's folder")
        return None
    definition = spec.model_dump_json()
    first_path, first_def = names.setdefault(spec.name, (path, definition))
    if first_def != definition:
        problems.append(
            f"{path}.name: {spec.name!r} already names a different method ({first_path});"
            " a name identifies one method: give each its own `name:`"
        )
        return None
    for kind, comp, part in spec.components():
        _check_component(registry, kind, comp, f"{path}.{part}", problems, check_options=False)
    return spec  # an unknown part is reported; the known parts' options are still checked


def _registered_method(registry, name: str, path: str, problems: list[str]) -> Any:
    """The registered definition of method ``name`` (a MethodSpec or its dict); None, reported,
    when no method has that name."""
    from ertrl_bench.plugins import unknown_name_message

    table = registry.entries["methods"]
    if name not in table:
        problems.append(f"{path}: " + unknown_name_message("methods", name, sorted(table)))
        return None
    return table[name].factory


def _check_tier_and_device(tier: str, device: str, problems: list[str]) -> None:
    from ertrl_bench.data.tiers import TIERS

    if tier not in TIERS:
        problems.append(f"tier: unknown tier {tier!r}; available: {', '.join(TIERS)}")
    if problem := device_problem(device):
        problems.append(f"device: {problem}")


def _check_suite_settings(suite: Suite, registry, problems: list[str]) -> None:
    """The suite-wide fields: ``component_params`` names a known component, tier, device."""
    all_types = {
        n for kind in ("encoders", "encoder_losses", "backbones") for n in registry.entries[kind]
    }  # component_params may also name a component no method of this suite uses
    for name in suite.component_params:
        if name not in all_types:
            problems.append(
                f"component_params.{name}: no encoder, encoder loss or backbone is named {name!r};"
                f" available: {', '.join(sorted(all_types))}"
            )
    _check_tier_and_device(suite.tier, suite.device, problems)


def _entries(suite: Suite, registry, problems: list[str]) -> list[_Entry]:
    """Every run the suite asks for, as written: the grid's env x method x seed, then the
    explicit runs (their ``train`` / ``eval`` merged over the suite's)."""
    out: list[_Entry] = []
    names: dict[str, tuple[str, str]] = {}  # method name -> (first YAML path, definition)
    if suite.grid is not None:
        envs = [
            (env, _check_component(registry, "envs", env, f"grid.envs[{i}]", problems))
            for i, env in enumerate(suite.grid.envs)
        ]
        methods = [
            (
                _named_method(registry, m, f"grid.methods[{j}]", names, problems),
                f"grid.methods[{j}]",
            )
            for j, m in enumerate(suite.grid.methods)
        ]
        # seed-major: every method's seed 0 before any seed 1, so a study stopped half-way
        # has the same seeds for every method (and its finished runs can be compared)
        for env, env_ok in envs:
            for seed in suite.grid.seeds:
                for method, method_path in methods:
                    out.append(
                        _Entry(
                            "grid",
                            env,
                            env_ok,
                            method,
                            method_path,
                            seed,
                            suite.train,
                            suite.eval,
                            suite.data,
                        )
                    )
    for i, run in enumerate(suite.runs):
        path = f"runs[{i}]"
        env_ok = _check_component(registry, "envs", run.env, f"{path}.env", problems)
        method = _named_method(registry, run.method, f"{path}.method", names, problems)
        train = evalc = None
        try:
            train = TrainConfig.model_validate(_merge(suite.train, run.train))
        except ValidationError as exc:
            problems.extend(format_validation_error(exc, f"{path}.train", TrainConfig))
        try:
            evalc = EvalConfig.model_validate(_merge(suite.eval, run.eval))
        except ValidationError as exc:
            problems.extend(format_validation_error(exc, f"{path}.eval", EvalConfig))
        if train is not None and evalc is not None:
            out.append(
                _Entry(
                    path,
                    run.env,
                    env_ok,
                    method,
                    f"{path}.method",
                    run.seed,
                    train,
                    evalc,
                    {**suite.data, **run.data},
                )
            )
    return out


def _families(entries: list[_Entry], problems: list[str]) -> dict[str, Any]:
    """Each valid env of the suite built once (keyed by ``_env_key``): its per-family values
    (``schedule_defaults``, ``component_defaults``) are read from it."""
    from ertrl_bench.registry import create

    families: dict[str, Any] = {}
    for e in entries:
        key = _env_key(e.env)
        if not e.env_ok or key in families:
            continue
        try:
            families[key] = create("envs", e.env)
        except ErtrlError as exc:
            problems.append(f"env {e.env.type}: {exc}")
            families[key] = None
    return families


def _resolve_components(
    method: MethodSpec, family, suite: Suite, registry, path: str, problems: list[str]
) -> MethodSpec:
    """Each component's options, resolved: option default < family default
    (``component_defaults``) < suite ``component_params`` < the method's own params.
    A component of unknown name (reported by ``_named_method``) is left as written."""
    defaults = dict(getattr(family, "component_defaults", {}))
    update: dict[str, Any] = {}
    losses = []
    for kind, comp, part in method.components():
        if comp.type not in registry.entries[kind]:
            continue
        shared = suite.component_params.get(comp.type, {})
        params = {**defaults.get(comp.type, {}), **shared, **comp.params}
        options = registry.entries[kind][comp.type].options
        if options is not None:
            try:
                params = options.model_validate(params).model_dump(mode="json")
            except ValidationError as exc:

                def written_in(key, comp=comp, shared=shared, part=part):
                    """Where the suite set ``key``: the method's params, else component_params."""
                    if key in shared and key not in comp.params:
                        return f"component_params.{comp.type}"
                    return f"{path}.{part}.params"

                problems.extend(format_validation_error(exc, written_in, options))
        resolved = comp.model_copy(update={"params": params})
        if kind == "encoder_losses":
            losses.append(resolved)
        else:
            update[part] = resolved
    return method.model_copy(update={**update, "encoder_losses": losses})


def _resolve_schedule(
    entry: _Entry, family, device: str, problems: list[str]
) -> tuple[ResolvedTrainConfig, ResolvedEvalConfig] | None:
    """The run's train / eval numbers with the family's values filled in
    (``config.resolve_schedule``); a value that fails its checks only once filled is reported
    with the run's path and env."""
    prefix = "" if entry.path == "grid" else f"{entry.path}."
    on_cuda = entry.train.cuda_graph and runs_on_cuda(device)
    try:
        return resolve_schedule(entry.train, entry.eval, family.schedule_defaults(), on_cuda)
    except ValidationError as exc:
        section = "train" if exc.title == "ResolvedTrainConfig" else "eval"
        problems.extend(
            f"{line} (env {entry.env.type}; a value the suite leaves out is the family's)"
            for line in format_validation_error(exc, prefix=f"{prefix}{section}")
        )
        return None


def _check_data(
    tier: str, entries: list[_Entry], families: dict, registry, problems: list[str]
) -> None:
    """Each run's dataset tier with its ``data:`` overrides and quality, checked per family."""
    from ertrl_bench.data.quality import quality_levels, split_data_options
    from ertrl_bench.data.tiers import resolve_tier

    seen = set()
    for e in entries:
        family = families.get(_env_key(e.env))
        key = (_env_key(e.env), json.dumps(e.data, sort_keys=True, default=str))
        if family is None or key in seen:
            continue
        seen.add(key)
        where = "data" if e.path == "grid" else f"{e.path}.data"
        try:
            overrides, quality = split_data_options(e.data)
            dt = resolve_tier(tier, registry.get("envs", e.env.type).factory, overrides)
            scripted = family.scripted_behavior()
            levels = list(scripted.noise) if scripted is not None else dt.checkpoints
            quality_levels(list(range(len(levels))), quality)
        except ErtrlError as exc:
            problems.append(f"{where}: {exc}")


def _canonical_env(env: Component, family) -> Component:
    """The env as a run's spec holds it: a ``train_tasks`` equal to the family's own count
    (its grid's 20) is left out, so naming it is the same run (same id) as not; another count
    stays in the spec, hence in the run id (docs/data.md "Number of training tasks")."""
    from ertrl_bench.envs.base import TRAIN_TASKS_OPTION

    if env.params.get(TRAIN_TASKS_OPTION, 0) != family.default_train_tasks:
        return env
    params = {k: v for k, v in env.params.items() if k != TRAIN_TASKS_OPTION}
    return env.model_copy(update={"params": params})


def _check_unique_ids(specs: list[RunSpec], problems: list[str]) -> None:
    """Two runs with one run id would share a results folder: each is reported."""
    seen: dict[str, int] = {}
    for k, spec in enumerate(specs):
        rid = spec.run_id()
        if rid in seen:
            problems.append(f"runs: run {k} duplicates run {seen[rid]} ({rid})")
        seen[rid] = k


def expand_suite(suite: Suite, source: str = "suite") -> list[RunSpec]:
    """The suite's runs as ``RunSpec`` s, every option and number resolved (their hash is the
    run id, so a changed default makes new runs).

    Steps, each adding its problems (with YAML paths), raised together as one ``ConfigError``:
    suite-wide settings; the runs as written (methods looked up by name); each env's family
    built once; per run, component options and the train / eval numbers resolved with the
    family's values; the data tier per family; run ids unique.
    """
    from ertrl_bench.data.quality import canonical_data
    from ertrl_bench.data.tiers import TIERS
    from ertrl_bench.registry import component_versions

    registry = get_registry()
    problems: list[str] = []
    _check_suite_settings(suite, registry, problems)
    entries = _entries(suite, registry, problems)
    families = _families(entries, problems)
    methods: dict[tuple[str, str], MethodSpec] = {}  # (env, method as written) -> resolved
    resolved = []
    for e in entries:
        family = families.get(_env_key(e.env))
        if e.method is None or family is None:
            continue
        key = (_env_key(e.env), e.method.model_dump_json())
        if key not in methods:
            methods[key] = _resolve_components(
                e.method, family, suite, registry, e.method_path, problems
            )
        schedule = _resolve_schedule(e, family, suite.device, problems)
        if schedule is not None:
            resolved.append((e, methods[key], *schedule))
    if suite.tier in TIERS:
        _check_data(suite.tier, entries, families, registry, problems)
    if problems:
        raise ConfigError(source, _dedupe(problems))

    specs = [
        RunSpec(
            suite=suite.name,
            env=_canonical_env(e.env, families[_env_key(e.env)]),
            method=method,
            seed=e.seed,
            tier=suite.tier,
            data=canonical_data(e.data),
            train=train,
            eval=evalc,
            device=suite.device,
            checkpoint=suite.checkpoint,
            versions=component_versions(
                [("envs", e.env.type), *((kind, c.type) for kind, c, _ in method.components())]
            ),
        )
        for e, method, train, evalc in resolved
    ]
    _check_unique_ids(specs, problems)
    if problems:
        raise ConfigError(source, problems)
    return specs


def load_suite(path: str | Path) -> tuple[Suite, list[RunSpec]]:
    """Load, validate and expand a suite; every problem is raised at once (ConfigError)."""
    suite, source = load_suite_file(path)
    return suite, expand_suite(suite, source)
