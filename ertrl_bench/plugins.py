"""The plugin manager: built-ins and entry-point plugins, through the same hooks.

External plugins (entry-point group ``ertrl_bench``) are loaded unless
``ERTRL_BENCH_LOAD_PLUGINS`` says otherwise: unset = all installed plugins; an empty string =
none (what the test suite uses); a comma-separated list = only those entry-point names.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ertrl_bench import hookspecs
from ertrl_bench.errors import ErtrlError

hookimpl = pluggy.HookimplMarker("ertrl_bench")

DEFAULT_PLUGINS = (
    "ertrl_bench.envs",
    "ertrl_bench.encoders",
    "ertrl_bench.regularizers",
    "ertrl_bench.backbones",
    "ertrl_bench.methods",
    "ertrl_bench.executors",
)

KINDS = ("envs", "encoders", "regularizers", "backbones", "methods", "executors")
SINGULAR = {
    "envs": "env family",
    "encoders": "encoder",
    "regularizers": "regularizer",
    "backbones": "backbone",
    "methods": "method",
    "executors": "executor",
}


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


def unknown_name_message(kind: str, name: str, available: list[str]) -> str:
    return (
        f"unknown {SINGULAR[kind]} {name!r}; available: {', '.join(available) or '(none)'}"
        " (see `ertrl-bench plugins`)"
    )


def _plugin_label(pm: pluggy.PluginManager, plugin: object) -> str:
    name = pm.get_name(plugin) or repr(plugin)
    for dist_plugin, dist in pm.list_plugin_distinfo():
        if dist_plugin is plugin:
            return f"{dist.project_name} ({name})"
    return name


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Call every register hook, one plugin at a time, so clashes can name both plugins."""
    registry = Registry()
    for kind in KINDS:
        hook = getattr(pm.hook, f"register_{kind}")
        for impl in reversed(hook.get_hookimpls()):
            label = _plugin_label(pm, impl.plugin)
            table = registry.entries[kind]

            def register(name, factory, options=None, _table=table, _label=label, _kind=kind):
                if not isinstance(name, str) or not name:
                    raise ErtrlError(
                        f"plugin {_label} registered a {SINGULAR[_kind]} without a name"
                    )
                if name in _table:
                    raise ErtrlError(
                        f"{SINGULAR[_kind]} {name!r} is registered twice: by {_table[name].plugin}"
                        f" and by {_label}; uninstall one, or limit loading with"
                        " ERTRL_BENCH_LOAD_PLUGINS"
                    )
                _table[name] = Entry(name, factory, options, _label)

            impl.function(register=register)
    return registry


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    allow = os.environ.get("ERTRL_BENCH_LOAD_PLUGINS")
    names = [None] if allow is None else [s.strip() for s in allow.split(",") if s.strip()]
    for name in names:
        try:
            pm.load_setuptools_entrypoints("ertrl_bench", name=name)
        except Exception as exc:  # a broken third-party plugin must say who it is
            raise ErtrlError(
                f"could not load an ertrl_bench plugin ({name or 'all'}): {exc}"
            ) from exc


_PM: pluggy.PluginManager | None = None
_REGISTRY: Registry | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    global _PM
    if _PM is None:
        pm = pluggy.PluginManager("ertrl_bench")
        pm.add_hookspecs(hookspecs)
        for mod in DEFAULT_PLUGINS:
            pm.register(importlib.import_module(mod), name=mod)
        _load_entry_points(pm)
        pm.check_pending()
        _PM = pm
    return _PM


def get_registry() -> Registry:
    """The registry of every component, rebuilt when plugins are (un)registered."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry(get_plugin_manager())
    return _REGISTRY


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register a plugin object at run time (tests, notebooks); invalidates the registry."""
    global _REGISTRY
    pm = get_plugin_manager()
    pm.register(plugin, name=name)
    try:
        pm.check_pending()
    except Exception:  # a rejected plugin (misspelt hook) must not stay registered
        pm.unregister(plugin)
        raise
    _REGISTRY = None


def unregister_plugin(name_or_plugin) -> None:
    global _REGISTRY
    pm = get_plugin_manager()
    if isinstance(name_or_plugin, str):
        pm.unregister(name=name_or_plugin)
    else:
        pm.unregister(name_or_plugin)
    _REGISTRY = None


def describe_plugins() -> list[dict]:
    """One record per loaded plugin: its package, version, and what it registers."""
    pm = get_plugin_manager()
    out = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        version = None
        package = name
        for dist_plugin, dist in pm.list_plugin_distinfo():
            if dist_plugin is plugin:
                package, version = dist.project_name, dist.version
        if package.startswith("ertrl_bench."):
            from ertrl_bench import __version__

            package, version = "ertrl-bench (built-in)", __version__
        record = {"name": name, "package": package, "version": version, "hooks": []}
        for kind in KINDS:
            hook = getattr(pm.hook, f"register_{kind}")
            for impl in hook.get_hookimpls():
                if impl.plugin is plugin:
                    names: list[str] = []
                    impl.function(register=lambda n, *a, _names=names, **k: _names.append(n))
                    record[kind] = names
                    record["hooks"].append(f"register_{kind}")
        for impl in pm.hook.register_commands.get_hookimpls():
            if impl.plugin is plugin:
                record["hooks"].append("register_commands")
        out.append(record)
    return out
