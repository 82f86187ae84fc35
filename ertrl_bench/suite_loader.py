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
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ertrl_bench.config import (
    SLUG_HELP,
    Component,
    EvalConfig,
    MethodSpec,
    RunSpec,
    Suite,
    TrainConfig,
    device_problem,
    is_safe_name,
)
from ertrl_bench.errors import ConfigError, ErtrlError


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
    return sorted(p.stem for p in (Path(__file__).parent / "suites").glob("*.yaml"))


def read_suite_yaml(path: str | Path) -> tuple[Any, str]:
    """The parsed YAML of a suite file (or built-in name) and the name to report it by."""
    p = Path(path)
    if not p.exists():
        builtin = builtin_suite_path(str(path)) if is_safe_name(str(path)) else None
        if builtin is None:
            raise ErtrlError(
                f"{path}: no such suite file (built-in suites: {', '.join(builtin_suite_names())};"
                " give a path to a .yaml file or one of those names)"
            )
        p = builtin
    source = str(path)
    if p.is_dir():
        raise ErtrlError(f"{source}: is a folder, not a suite file (give a .yaml file)")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ErtrlError(f"{source}: cannot read the suite file ({exc.strerror or exc})") from None
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
    return raw, source


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

    So one ``validate`` shows every mistake: structure, values and names, all at once.
    """
    from ertrl_bench.data.tiers import TIERS
    from ertrl_bench.plugins import get_registry, unknown_name_message

    registry = get_registry()
    problems: list[str] = []

    def component(kind: str, value: Any, path: str) -> None:
        try:
            comp = Component.model_validate(value)
        except ValidationError:
            return  # reported by the structural pass
        table = registry.entries[kind]
        if comp.type not in table:
            problems.append(f"{path}: " + unknown_name_message(kind, comp.type, sorted(table)))

    def method(value: Any, path: str) -> None:
        if isinstance(value, str):
            table = registry.entries["methods"]
            if value not in table:
                problems.append(f"{path}: " + unknown_name_message("methods", value, sorted(table)))
        elif isinstance(value, dict):
            for part, kind in _METHOD_PARTS:
                if part in value:
                    component(kind, value[part], f"{path}.{part}")
            losses = value.get("encoder_losses")
            for k, loss in enumerate(losses if isinstance(losses, list) else []):
                component("regularizers", loss, f"{path}.encoder_losses[{k}]")
            name = value.get("name")
            if isinstance(name, str) and not is_safe_name(name):
                problems.append(f"{path}.name: {name!r} is not a safe name ({SLUG_HELP})")

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
    tier = raw.get("tier", "smoke")
    if isinstance(tier, str) and tier not in TIERS:
        problems.append(f"tier: unknown tier {tier!r}; available: {', '.join(TIERS)}")
    device = raw.get("device", "auto")
    if isinstance(device, str) and (p := device_problem(device)):
        problems.append(f"device: {p}")
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
        problems += format_validation_error(exc)
    reported = {line.partition(": ")[0] for line in problems}
    problems += [p for p in _nonfinite_problems(raw) if p.partition(": ")[0] not in reported]
    if suite is None:
        problems += _raw_name_problems(raw)
    elif problems:  # the structure is fine: the full checks can run too
        try:
            expand_suite(suite, source)
        except ConfigError as exc:
            problems += exc.problems
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


def expand_suite(suite: Suite, source: str = "suite") -> list[RunSpec]:
    """Resolve methods by name, check every plugin name and option, and expand the grid.

    Every problem is collected and raised together, each with its YAML path.
    """
    from ertrl_bench.plugins import get_registry, unknown_name_message

    registry = get_registry()
    problems: list[str] = []

    def check_component(kind: str, comp: Component, path: str, check_options=True) -> None:
        table = registry.entries[kind]
        if comp.type not in table:
            problems.append(f"{path}: " + unknown_name_message(kind, comp.type, sorted(table)))
            return
        options = table[comp.type].options
        if options is not None and check_options:
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
            registered = table[method].factory  # a MethodSpec or its dict
            try:
                spec = MethodSpec.model_validate(
                    registered.model_dump() if isinstance(registered, BaseModel) else registered
                )
            except ValidationError as exc:
                problems.extend(format_validation_error(exc, prefix=f"{path} ({method})"))
                return None
            spec = spec.model_copy(update={"name": method})
        else:
            spec = method
            if spec.name is None:
                spec = spec.model_copy(update={"name": spec.default_name()})
        if not is_safe_name(spec.name):
            problems.append(
                f"{path}.name: {spec.name!r} is not a safe name ({SLUG_HELP}); it names the"
                " run's folder"
            )
            return None
        definition = spec.model_dump_json()
        first_path, first_def = method_defs.setdefault(spec.name, (path, definition))
        if first_def != definition:
            problems.append(
                f"{path}.name: {spec.name!r} already names a different method ({first_path});"
                " a name identifies one method: give each its own `name:`"
            )
            return None
        ok = True
        for kind, comp, part in spec.components():
            n = len(problems)
            check_component(kind, comp, f"{path}.{part}", check_options=False)
            ok = ok and len(problems) == n
        if ok:
            method_paths[id(spec)] = path
        return spec if ok else None

    families: dict[str, Any] = {}
    method_paths: dict[int, str] = {}  # id(resolved MethodSpec) -> its YAML path
    method_defs: dict[str, tuple[str, str]] = {}  # method name -> (first YAML path, definition)

    def family_defaults(env: Component) -> dict[str, dict]:
        key = json.dumps(env.model_dump(mode="json"), sort_keys=True)
        if key not in families:
            from ertrl_bench.components import create

            try:
                families[key] = dict(getattr(create("envs", env), "component_defaults", {}))
            except ErtrlError as exc:
                problems.append(f"env {env.type}: {exc}")
                families[key] = {}
        return families[key]

    def resolve_params(m: MethodSpec, env: Component, path: str) -> MethodSpec:
        """Each component's options, resolved: option default < family default <
        suite component_params < the method's own params (recorded in the RunSpec)."""
        defaults = family_defaults(env)
        update: dict[str, Any] = {}
        losses = []
        for kind, comp, part in m.components():
            params = {
                **defaults.get(comp.type, {}),
                **suite.component_params.get(comp.type, {}),
                **comp.params,
            }
            options = registry.entries[kind][comp.type].options
            if options is not None:
                try:
                    params = options.model_validate(params).model_dump(mode="json")
                except ValidationError as exc:
                    problems.extend(format_validation_error(exc, prefix=f"{path}.{part}.params"))
            resolved = comp.model_copy(update={"params": params})
            if kind == "regularizers":
                losses.append(resolved)
            else:
                update[part] = resolved
        return m.model_copy(update={**update, "encoder_losses": losses})

    from ertrl_bench.data.tiers import TIERS, resolve_tier

    all_types = {
        n for kind in ("encoders", "regularizers", "backbones") for n in registry.entries[kind]
    }  # component_params may also name a component no method of this suite uses
    for name in suite.component_params:
        if name not in all_types:
            problems.append(
                f"component_params.{name}: no encoder, encoder loss or backbone is named {name!r};"
                f" available: {', '.join(sorted(all_types))}"
            )
    if suite.tier not in TIERS:
        problems.append(f"tier: unknown tier {suite.tier!r}; available: {', '.join(TIERS)}")
    if device := device_problem(suite.device):
        problems.append(f"device: {device}")

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
        train = evalc = None
        try:
            train = TrainConfig.model_validate(_merge(suite.train, run.train))
        except ValidationError as exc:
            problems.extend(format_validation_error(exc, prefix=f"runs[{i}].train"))
        try:
            evalc = EvalConfig.model_validate(_merge(suite.eval, run.eval))
        except ValidationError as exc:
            problems.extend(format_validation_error(exc, prefix=f"runs[{i}].eval"))
        if train is not None and evalc is not None:
            triples.append((run.env, m, run.seed, train, evalc))

    check_tiers = not problems and suite.tier in TIERS
    # every component's options, resolved per family (names known: options checked here)
    resolved = {}
    for env, m, _, _, _ in triples:
        if m is None or env.type not in registry.entries["envs"]:
            continue
        key = (env.model_dump_json(), m.model_dump_json())
        if key not in resolved:
            resolved[key] = resolve_params(m, env, method_paths.get(id(m), str(m.name)))
    if check_tiers:
        for env in {t[0].type for t in triples}:
            try:
                resolve_tier(suite.tier, registry.get("envs", env).factory, suite.data)
            except ErtrlError as exc:
                problems.append(f"data: {exc}")
    if problems:
        raise ConfigError(source, list(dict.fromkeys(problems)))

    from ertrl_bench.components import component_versions

    specs = []
    for env, m, seed, train, evalc in triples:
        m = resolved[(env.model_dump_json(), m.model_dump_json())]
        versions = component_versions(
            [("envs", env.type), *((kind, c.type) for kind, c, _ in m.components())]
        )
        specs.append(
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
                versions=versions,
            )
        )
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
    """Load, validate and expand a suite; every problem is raised at once (ConfigError)."""
    suite, source = load_suite_file(path)
    return suite, expand_suite(suite, source)
