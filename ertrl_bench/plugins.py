"""The plugin manager: built-ins and entry-point plugins, through the same hooks.

External plugins (entry-point group ``ertrl_bench``) are loaded unless
``ERTRL_BENCH_LOAD_PLUGINS`` says otherwise: unset = all installed plugins; an empty string =
none (what the test suite uses); a comma-separated list = only those entry-point names (a name
that no installed package provides is an error).

Every plugin is checked when it is loaded, and every mistake is one :class:`PluginError` naming
the plugin (package and entry point) and the fix: a misspelt hook name, a hook function without
``@hookimpl``, a plugin that registers nothing, an options class that is not a pydantic model or
that accepts unknown keys, an env family whose ``name`` is not its registered name, a name
registered twice (names of one kind, and command names, are compared ignoring case, ``-`` and
``_``: see :func:`normalised`), an entry point that fails to import. See docs/plugins.md.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from ertrl_bench import hookspecs
from ertrl_bench.errors import ErtrlError

hookimpl = pluggy.HookimplMarker("ertrl_bench")

GROUP = "ertrl_bench"  # the entry-point group third-party packages declare

DEFAULT_PLUGINS = (
    "ertrl_bench.envs",
    "ertrl_bench.encoders",
    "ertrl_bench.encoder_losses",
    "ertrl_bench.backbones",
    "ertrl_bench.methods",
    "ertrl_bench.executors",
    "ertrl_bench.suite_loader",
)

KINDS = ("envs", "encoders", "encoder_losses", "backbones", "methods", "executors", "suites")
SINGULAR = {
    "envs": "env family",
    "encoders": "encoder",
    "encoder_losses": "encoder loss",
    "backbones": "backbone",
    "methods": "method",
    "executors": "executor",
    "suites": "suite",
}

# hooks that were renamed: a plugin still using the old name is told the new one
RENAMED_HOOKS = {"register_regularizers": "register_encoder_losses"}

FIX_OPTIONS = (
    "subclass ertrl_bench.options.Strict (a pydantic model that forbids unknown keys):"
    " `class MyOptions(Strict): weight: float = Field(1.0, description=...)`"
)


class PluginError(ErtrlError):
    """A plugin is broken in a way its author must fix; the message names the plugin."""


@dataclass(frozen=True)
class Lazy:
    """A factory named ``"package.module:Name"``, imported when it is first called.

    Registering ``Lazy("mypkg.net:MyEncoder")`` with options from a torch-free module lets
    ``ertrl-bench plugins``, ``validate`` and ``--help`` run without importing torch; the class
    loads when a run builds the component.
    """

    path: str

    def load(self) -> Any:
        module, _, attr = self.path.partition(":")
        return getattr(importlib.import_module(module), attr)

    def __call__(self, *args, **kwargs):
        return self.load()(*args, **kwargs)


@dataclass(frozen=True)
class Entry:
    """One registered component: its factory, its options model and the plugin it came from."""

    name: str
    factory: Any
    options: Any  # a pydantic model class, or None for methods
    plugin: str


@dataclass
class Registry:
    """name -> Entry for each component kind, filled by the ``register_*`` hooks."""

    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def get(self, kind: str, name: str) -> Entry:
        table = self.entries[kind]
        if name not in table:
            raise ErtrlError(unknown_name_message(kind, name, sorted(table)))
        return table[name]

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])


def normalised(name: str) -> str:
    """How names are compared for clashes: case, ``-`` and ``_`` ignored, so ``ER-TRL``,
    ``er_trl`` and ``ertrl`` are one name (a suite, a reader or a shell could not tell them
    apart, and a plugin's ``CSRO`` beside the built-in ``csro`` would be a trap)."""
    return name.casefold().replace("-", "").replace("_", "")


def clash_message(what: str, name: str, who: str, first_name: str, first_who: str) -> str:
    """One message for a name taken twice (exactly or up to case, ``-``, ``_``), naming both."""
    if name == first_name:
        head = f"{what} {name!r} is registered twice: by {first_who} and by {who}"
    else:
        head = (
            f"{what} {name!r} of {who} clashes with {what} {first_name!r} of {first_who}"
            " (names are compared ignoring case, '-' and '_')"
        )
    return f"{head}; rename one, uninstall one, or limit loading with ERTRL_BENCH_LOAD_PLUGINS"


def unknown_name_message(kind: str, name: str, available: list[str]) -> str:
    return (
        f"unknown {SINGULAR[kind]} {name!r}; available: {', '.join(available) or '(none)'}"
        f" (see `ertrl-bench plugins`){closest_name(name, available)}"
    )


def closest_name(name: str, available: list[str]) -> str:
    """``". Did you mean 'X'?"`` for the registered name closest to a misspelt one, or ``""``."""
    close = difflib.get_close_matches(str(name), available, n=1)
    return f". Did you mean {close[0]!r}?" if close else ""


# ---------------------------------------------------------------------------------------------
# Naming a plugin in messages


def hook_names() -> list[str]:
    """The names of every hook a plugin may implement."""
    return sorted(
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, f"{GROUP}_spec")
    )


def _dist_of(pm: pluggy.PluginManager, plugin: object):
    for dist_plugin, dist in pm.list_plugin_distinfo():
        if dist_plugin is plugin:
            return dist
    return None


def _plugin_label(pm: pluggy.PluginManager, plugin: object) -> str:
    """Short name, as in ``Entry.plugin``: ``package (entry point)`` or the registered name."""
    name = pm.get_name(plugin) or repr(plugin)
    dist = _dist_of(pm, plugin)
    return f"{dist.project_name} ({name})" if dist is not None else name


def describe_plugin(pm: pluggy.PluginManager, plugin: object) -> str:
    """Long name for error messages: package, version and entry point where there is one."""
    name = pm.get_name(plugin) or repr(plugin)
    dist = _dist_of(pm, plugin)
    if dist is not None:
        value = next(
            (ep.value for ep in dist.entry_points if ep.group == GROUP and ep.name == name), "?"
        )
        return (
            f"plugin {name!r} (package {dist.project_name} {dist.version},"
            f" entry point `{name} = {value}`)"
        )
    if name in DEFAULT_PLUGINS:
        return f"built-in plugin {name} (package ertrl-bench)"
    return f"plugin {name!r}"


# ---------------------------------------------------------------------------------------------
# Checks on one plugin object (hooks) and on what it registers (names, factories, options)


def _own_functions(plugin: object) -> dict[str, Any]:
    """Callables defined by the plugin itself (not imported into its module)."""
    out = {}
    module_name = plugin.__name__ if inspect.ismodule(plugin) else None
    for name in dir(plugin):
        if name.startswith("_"):
            continue
        try:
            obj = getattr(plugin, name)
        except Exception:  # a property that raises: not a hook
            continue
        if not callable(obj) or inspect.isclass(obj):
            continue
        if module_name is not None and getattr(obj, "__module__", None) != module_name:
            continue
        out[name] = obj
    return out


def _did_you_mean(name: str, hooks: list[str]) -> str:
    if name in RENAMED_HOOKS:
        return f"it is now called {RENAMED_HOOKS[name]!r}. "
    close = difflib.get_close_matches(name, hooks, n=1, cutoff=0.75)
    return f"did you mean {close[0]!r}? " if close else ""


def check_plugin_hooks(pm: pluggy.PluginManager, plugin: object) -> None:
    """Misspelt hooks, hook functions without ``@hookimpl``, a plugin that registers nothing."""
    who = describe_plugin(pm, plugin)
    hooks = hook_names()
    implemented = set()
    for caller in pm.get_hookcallers(plugin) or []:
        if not caller.has_spec():
            raise PluginError(
                f"{who}: @hookimpl function {caller.name!r} is not an ertrl_bench hook;"
                f" {_did_you_mean(caller.name, hooks)}rename it to one of: {', '.join(hooks)}"
            )
        implemented.add(caller.name)
    own = [n for n in _own_functions(plugin) if n not in implemented]
    unmarked = [n for n in own if n in hooks]  # a hook's exact name without @hookimpl
    if unmarked:
        raise PluginError(
            f"{who}: {', '.join(map(repr, unmarked))} is not decorated with @hookimpl, so"
            " ertrl-bench never calls it; add `from ertrl_bench.plugins import hookimpl` and"
            " put `@hookimpl` above it"
        )
    if not implemented:
        # a near-miss name (a helper like register_my_envs is fine when a real hook exists)
        near = [n for n in own if difflib.get_close_matches(n, hooks, n=1, cutoff=0.85)]
        hint = "".join(
            f" {n!r} looks like a hook: {_did_you_mean(n, hooks)}(and mark it @hookimpl)."
            for n in near
        )
        raise PluginError(
            f"{who} registers nothing: it has no @hookimpl function.{hint} Implement one of"
            f" {', '.join(hooks)} (see docs/plugins.md)"
        )


def _register_checked(pm: pluggy.PluginManager, plugin: object, name: str | None) -> None:
    """``pm.register`` plus the hook checks; a rejected plugin does not stay registered."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        # a known hook with wrong argument names: pluggy's message says which
        label = name or repr(plugin)
        raise PluginError(
            f"plugin {label!r}: {exc}. Each register_* hook takes exactly one argument named"
            " `register` (register_commands: `cli`)"
        ) from None
    except ValueError as exc:  # the name is taken
        raise PluginError(f"plugin {name!r}: {exc}") from None
    try:
        check_plugin_hooks(pm, plugin)
    except PluginError:
        pm.unregister(plugin)
        raise


def _check_options(kind: str, name: str, options: Any, who: str) -> None:
    from pydantic import BaseModel

    what = f"{who}: the options of {SINGULAR[kind]} {name!r}"
    if options is None:
        raise PluginError(
            f"{what} are missing: register(name, factory, Options) needs an options model,"
            f" even an empty one; {FIX_OPTIONS}"
        )
    if not (inspect.isclass(options) and issubclass(options, BaseModel)):
        raise PluginError(f"{what} must be a pydantic model class, got {options!r}; {FIX_OPTIONS}")
    if options.model_config.get("extra") != "forbid":
        raise PluginError(
            f"{what} ({options.__name__}) accept unknown keys, so a misspelt option in a suite"
            f" would be silently ignored; {FIX_OPTIONS}"
        )


def _env_name_error(name: str, family_name: Any, who: str) -> PluginError:
    return PluginError(
        f"{who}: env family registered as {name!r} has name = {family_name!r}; set the class"
        f" attribute `name = {name!r}` (the name keys the dataset cache: two families with one"
        " name would share, and overwrite, each other's datasets)"
    )


def _checked_env_factory(name: str, factory: Any, who: str) -> Any:
    """Env families made by a function are checked when made (a class is checked at once)."""
    if inspect.isclass(factory):
        if getattr(factory, "name", None) != name:
            raise _env_name_error(name, getattr(factory, "name", None), who)
        return factory

    @functools.wraps(factory)
    def make(*args, **kwargs):
        family = factory(*args, **kwargs)
        if getattr(family, "name", None) != name:
            raise _env_name_error(name, getattr(family, "name", None), who)
        return family

    return make


def _checked_suite_path(name: str, path: Any, who: str) -> Path:
    """A registered suite is an existing ``.yaml`` file, checked at load time: a plugin that
    forgot to ship its suites as package data is told so, not a user running the suite."""
    if not isinstance(path, str | os.PathLike):
        raise PluginError(
            f"{who}: suite {name!r} must be registered as register(name, path), path a .yaml"
            f" file, got {path!r}"
        )
    path = Path(path)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        raise PluginError(
            f"{who}: suite {name!r} is registered as {str(path)!r}, which is not a .yaml file"
            " (ship the suite inside the package: [tool.setuptools.package-data])"
        )
    return path


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Call every register hook, one plugin at a time, so errors can name the plugin."""
    from pydantic import BaseModel

    registry = Registry()
    # normalised name -> (name, plugin description), per kind: one name per kind, up to case,
    # "-" and "_" (an encoder loss and an encoder may share a name)
    taken_by_kind: dict[str, dict[str, tuple[str, str]]] = {k: {} for k in KINDS}
    for kind in KINDS:
        hook = getattr(pm.hook, f"register_{kind}")
        for impl in hook.get_hookimpls():  # in registration order: built-ins first
            label = _plugin_label(pm, impl.plugin)
            who = describe_plugin(pm, impl.plugin)
            table = registry.entries[kind]
            taken = taken_by_kind[kind]

            def register(
                name,
                factory,
                options=None,
                _table=table,
                _taken=taken,
                _label=label,
                _who=who,
                _kind=kind,
            ):
                what = SINGULAR[_kind]
                if not isinstance(name, str) or not name:
                    raise PluginError(f"{_who} registered a {what} without a name (got {name!r})")
                first = _taken.get(normalised(name))
                if first is not None:
                    raise PluginError(clash_message(what, name, _who, *first))
                if _kind == "suites":
                    factory = _checked_suite_path(name, factory, _who)
                elif _kind == "methods":
                    if not isinstance(factory, BaseModel | dict):
                        raise PluginError(
                            f"{_who}: method {name!r} must be registered as register(name,"
                            f" spec), spec a MethodSpec or its dict, got {factory!r}"
                        )
                else:
                    if not callable(factory):
                        raise PluginError(
                            f"{_who}: the factory of {what} {name!r} is not callable ({factory!r})"
                        )
                    _check_options(_kind, name, options, _who)
                    if _kind == "envs":
                        factory = _checked_env_factory(name, factory, _who)
                _table[name] = Entry(name, factory, options, _label)
                _taken[normalised(name)] = (name, _who)

            try:
                impl.function(register=register)
            except ErtrlError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"{who}: register_{kind} raised {type(exc).__name__}: {exc}"
                ) from exc
    return registry


# ---------------------------------------------------------------------------------------------
# Entry points


def _installed_entry_points() -> list[tuple[Any, Any]]:
    """(distribution, entry point) for every installed ``ertrl_bench`` entry point."""
    import importlib.metadata

    found = []
    seen = set()
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == GROUP and ep.name not in seen:
                seen.add(ep.name)
                found.append((dist, ep))
    return sorted(found, key=lambda pair: pair[1].name)


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    allow = os.environ.get("ERTRL_BENCH_LOAD_PLUGINS")
    installed = _installed_entry_points()
    if allow is not None:
        wanted = [s.strip() for s in allow.split(",") if s.strip()]
        available = {ep.name for _, ep in installed}
        unknown = [n for n in wanted if n not in available]
        if unknown:
            have = ", ".join(f"{ep.name} ({d.metadata['Name']})" for d, ep in installed)
            raise PluginError(
                f"ERTRL_BENCH_LOAD_PLUGINS names {', '.join(map(repr, unknown))}, which no"
                f" installed package provides as an ertrl_bench entry point; installed:"
                f" {have or '(none)'}. Fix the name (it is the entry point's name, left of `=`)"
                " or install the package"
            )
        installed = [(d, ep) for d, ep in installed if ep.name in wanted]
    for dist, ep in installed:
        if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
            continue
        who = (
            f"plugin {ep.name!r} (package {dist.metadata['Name']} {dist.version},"
            f" entry point `{ep.name} = {ep.value}`)"
        )
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(
                f"{who} failed to import: {type(exc).__name__}: {exc}. Fix or reinstall the"
                " package, uninstall it, or leave it out with ERTRL_BENCH_LOAD_PLUGINS=<the"
                " entry points to load, comma-separated>"
            ) from exc
        try:
            pm.register(plugin, name=ep.name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(
                f"{who}: {exc}. Each register_* hook takes one argument named `register`"
            ) from None
        pm._plugin_distinfo.append((plugin, dist))  # as pluggy's own entry-point loader does
        check_plugin_hooks(pm, plugin)


# ---------------------------------------------------------------------------------------------
# The process-wide manager and registry


_PM: pluggy.PluginManager | None = None
_REGISTRY: Registry | None = None


def builtin_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with the built-in plugins only (no entry points)."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    for mod in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(mod), name=mod)
    return pm


def get_plugin_manager() -> pluggy.PluginManager:
    global _PM
    if _PM is None:
        pm = builtin_plugin_manager()
        _load_entry_points(pm)
        _PM = pm
    return _PM


def get_registry() -> Registry:
    """The registry of every component, rebuilt when plugins are (un)registered."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry(get_plugin_manager())
    return _REGISTRY


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register a plugin object at run time (tests, notebooks); invalidates the registry.

    Every check runs now: a broken plugin raises :class:`PluginError` and stays unregistered.
    """
    global _REGISTRY
    pm = get_plugin_manager()
    _register_checked(pm, plugin, name)
    try:
        registry = build_registry(pm)
    except Exception:
        pm.unregister(plugin)
        raise
    _REGISTRY = registry


def unregister_plugin(name_or_plugin) -> None:
    global _REGISTRY
    pm = get_plugin_manager()
    if isinstance(name_or_plugin, str):
        pm.unregister(name=name_or_plugin)
    else:
        pm.unregister(name_or_plugin)
    _REGISTRY = None


@contextmanager
def builtins_only() -> Iterator[pluggy.PluginManager]:
    """Inside the block, the process sees the built-in plugins only (plus what is registered
    inside it); the previous manager comes back afterwards. What ``register_test_plugin`` uses."""
    global _PM, _REGISTRY
    saved = _PM, _REGISTRY
    _PM, _REGISTRY = builtin_plugin_manager(), None
    try:
        yield _PM
    finally:
        _PM, _REGISTRY = saved


def describe_plugins() -> list[dict]:
    """One record per loaded plugin (built-ins first, then by name): package, version, and what
    it registers (names sorted)."""
    pm = get_plugin_manager()
    registry = get_registry()  # the load-time checks of `validate` and `run` run here too
    out = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        version = None
        package = name
        dist = _dist_of(pm, plugin)
        if dist is not None:
            package, version = dist.project_name, dist.version
        if name in DEFAULT_PLUGINS:
            from ertrl_bench import __version__

            package, version = "ertrl-bench (built-in)", __version__
        record = {"name": name, "package": package, "version": version, "hooks": []}
        for kind in KINDS:
            hook = getattr(pm.hook, f"register_{kind}")
            if any(impl.plugin is plugin for impl in hook.get_hookimpls()):
                label = _plugin_label(pm, plugin)
                table = registry.entries[kind]
                record[kind] = sorted(n for n, e in table.items() if e.plugin == label)
                record["hooks"].append(f"register_{kind}")
        for impl in pm.hook.register_commands.get_hookimpls():
            if impl.plugin is plugin:
                record["hooks"].append("register_commands")
                record["commands"] = command_names(impl)
        out.append(record)
    builtin_order = {n: i for i, n in enumerate(DEFAULT_PLUGINS)}
    out.sort(
        key=lambda r: (r["name"] not in builtin_order, builtin_order.get(r["name"], 0), r["name"])
    )
    return out


# ---------------------------------------------------------------------------------------------
# What `ertrl-bench plugins` prints


def app_command_names(app) -> list[str]:
    """The sub-command and sub-group names of a typer app, as typer names them."""
    names = [
        c.name or c.callback.__name__.lower().replace("_", "-") for c in app.registered_commands
    ]
    names += [g.name or g.typer_instance.info.name or "?" for g in app.registered_groups]
    return sorted(names)


def command_names(plugin_hookimpl) -> list[str]:
    """The sub-commands a ``register_commands`` implementation adds (on a throwaway app)."""
    import typer

    app = typer.Typer()
    plugin_hookimpl.function(cli=app)
    return app_command_names(app)


def checked_plugin_commands(builtin: list[str]) -> list:
    """Each plugin's ``register_commands`` run on a throwaway typer app, checked: a command
    named like a built-in one (``builtin``) or another plugin's, up to case, ``-`` and ``_``,
    is one :class:`PluginError` naming both. Returns the apps, whose commands the CLI adds."""
    import typer

    pm = get_plugin_manager()
    taken = {normalised(n): (n, None) for n in builtin}
    apps = []
    for impl in pm.hook.register_commands.get_hookimpls():  # built-ins first
        who = describe_plugin(pm, impl.plugin)
        scratch = typer.Typer()
        try:
            impl.function(cli=scratch)
        except ErtrlError:
            raise
        except Exception as exc:
            raise PluginError(
                f"{who}: register_commands raised {type(exc).__name__}: {exc}"
            ) from exc
        for name in app_command_names(scratch):
            first_name, first_who = taken.get(normalised(name), (None, None))
            if first_name is not None and first_who is None:
                raise PluginError(
                    f"{who} adds the command {name!r}, which is ertrl-bench's own"
                    f" `ertrl-bench {first_name}` (package ertrl-bench; names are compared"
                    " ignoring case, '-' and '_'): a plugin cannot replace a built-in command."
                    " Rename the plugin's command, or leave the plugin out with"
                    " ERTRL_BENCH_LOAD_PLUGINS"
                )
            if first_name is not None:
                raise PluginError(clash_message("command", name, who, first_name, first_who))
            taken[normalised(name)] = (name, who)
        apps.append(scratch)
    return apps


def component_lines(records: list[dict]) -> list[str]:
    """One plain line per component, ordered by kind then name: ``kind  name  plugin  package``
    (for a pipe or a file: nothing is cut, ``grep`` finds a name with its plugin)."""
    rows = []
    for r in records:
        package = f"{r['package']} {r['version'] or ''}".strip()
        for i, kind in enumerate(KINDS):
            for name in r.get(kind, []):
                rows.append((i, SINGULAR[kind], name, r["name"], package))
        for name in r.get("commands", []):
            rows.append((len(KINDS), "command", name, r["name"], package))
    rows.sort()
    if not rows:
        return []
    w_kind = max(len(row[1]) for row in rows)
    w_name = max(len(row[2]) for row in rows)
    w_plugin = max(len(row[3]) for row in rows)
    return [
        f"{kind:<{w_kind}}  {name:<{w_name}}  {plugin:<{w_plugin}}  {package}"
        for _, kind, name, plugin, package in rows
    ]


def _constraint_text(meta: Any) -> str | None:
    for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        value = getattr(meta, attr, None)
        if value is not None:
            return f"{sym} {value}"
    for attr, sym in (("min_length", "length >="), ("max_length", "length <=")):
        value = getattr(meta, attr, None)
        if value is not None:
            return f"{sym} {value}"
    return None


def type_text(annotation: Any, constraints: list[str] | None = None) -> str:
    """A readable type: ``float | None``, ``tuple[int, ...]``; constraints collected aside."""
    import types
    import typing

    if constraints is None:
        constraints = []
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "None"
    if origin is typing.Annotated:
        for meta in annotation.__metadata__:
            text = _constraint_text(meta)
            if text:
                constraints.append(text)
        return type_text(args[0], constraints)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(a, constraints) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_text(a, constraints) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _trailing_comments(model) -> dict[str, str]:
    """``field: type = value  # comment`` in the model's source: the fallback description."""
    import re

    try:
        source = inspect.getsource(model)
    except (OSError, TypeError):
        return {}
    found = {}
    for line in source.splitlines():
        m = re.match(r"^\s+(\w+)\s*:[^#]*#\s*(.+)$", line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    return found


def options_schema(model) -> list[dict]:
    """Each option of a component: name, type, default (JSON), required, description."""
    from pydantic_core import PydanticUndefined, to_jsonable_python

    comments = _trailing_comments(model)
    out = []
    for name, f in model.model_fields.items():
        constraints: list[str] = []
        text = type_text(f.annotation, constraints)
        for meta in f.metadata:
            c = _constraint_text(meta)
            if c:
                constraints.append(c)
        required = f.is_required()
        default = None
        if not required:
            value = f.get_default(call_default_factory=True)
            default = None if value is PydanticUndefined else to_jsonable_python(value)
        out.append(
            {
                "name": name,
                "type": text,
                "constraints": list(dict.fromkeys(constraints)),
                "required": required,
                "default": default,
                "description": f.description or comments.get(name) or "",
            }
        )
    return out


def describe_component(name: str) -> list[dict]:
    """Every registered component called ``name`` (one per kind), with its options."""
    registry = get_registry()
    found = []
    for kind in KINDS:
        entry = registry.entries[kind].get(name)
        if entry is None:
            continue
        record = {"kind": SINGULAR[kind], "name": name, "plugin": entry.plugin, "registry": kind}
        if kind == "methods":
            spec = entry.factory
            if isinstance(spec, dict):  # methods are registered as dicts: show every part
                from ertrl_bench.config import MethodSpec

                spec = MethodSpec.model_validate(spec)
            record["method"] = spec.model_dump(mode="json", exclude={"name"})
            record["options"] = []
        elif kind == "suites":
            record["suite"] = str(entry.factory)
            record["options"] = []
        else:
            record["options_model"] = entry.options.__name__
            factory = entry.factory.load() if isinstance(entry.factory, Lazy) else entry.factory
            own = factory.__dict__.get("__doc__") if inspect.isclass(factory) else factory.__doc__
            doc = inspect.cleandoc(own or "")
            record["summary"] = doc.split("\n\n")[0].replace("\n", " ")
            record["options"] = options_schema(entry.options)
        found.append(record)
    if not found:
        every = sorted({n for kind in KINDS for n in registry.entries[kind]})
        raise ErtrlError(
            f"no component is named {name!r}; available: {', '.join(every)}"
            + closest_name(name, every)
        )
    return found


def component_text(record: dict) -> list[str]:
    """``ertrl-bench plugins --options NAME`` as plain lines (cf. ``llm models --options``)."""
    lines = [f"{record['kind']} {record['name']} (plugin {record['plugin']})"]
    if record.get("summary"):
        lines.append(f"  {record['summary']}")
    if "suite" in record:
        lines.append(f"  the file {record['suite']}: `ertrl-bench run {record['name']}`")
        return lines
    if "method" in record:
        parts = [f"{k}: {_short(v)}" for k, v in record["method"].items()]
        lines.append(f"  a named method: {', '.join(parts)}")
        lines.append("  (its options are its components': `ertrl-bench plugins --options <type>`)")
        return lines
    if not record["options"]:
        lines.append("  no options")
        return lines
    n = record["name"]
    usage = {
        "envs": f"in a suite: envs: [{{type: {n}, params: {{...}}}}]",
        "executors": f"ertrl-bench run SUITE --executor {n} --executor-opt KEY=VALUE",
    }.get(
        record["registry"],
        f"in a suite: {{type: {n}, params: {{...}}}}, or component_params: {{{n}: {{...}}}}",
    )
    lines.append(f"  Options ({record['options_model']}; {usage}):")
    for opt in record["options"]:
        extra = f" ({', '.join(opt['constraints'])})" if opt["constraints"] else ""
        default = "required" if opt["required"] else f"default {json_text(opt['default'])}"
        lines.append(f"    {opt['name']}: {opt['type']}{extra}, {default}")
        if opt["description"]:
            lines.append(f"      {opt['description']}")
    return lines


def _short(value: Any) -> str:
    """A method's part as its component names: ``{type: x, params: {}}`` -> ``x``."""
    if isinstance(value, dict) and "type" in value:
        return str(value["type"]) + (
            f" {json_text(value['params'])}" if value.get("params") else ""
        )
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return json_text(value) if not isinstance(value, str) else value


def json_text(value: Any) -> str:
    import json

    return json.dumps(value)
