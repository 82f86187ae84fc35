"""The package's import graph has no cycle: every module of ertrl_bench, imports at any depth
(inside functions too), except those under ``if TYPE_CHECKING:`` (annotations only)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "ertrl_bench"


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(mod: str, path: Path) -> set[str]:
    """The ertrl_bench modules ``mod`` imports; ``from pkg import sub`` counts as ``pkg.sub``."""
    tree = ast.parse(path.read_text())
    skip = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in MODULES and m != mod}


def test_the_whole_package_has_no_import_cycle():
    graph = {mod: _imports(mod, path) for mod, path in MODULES.items()}
    done: set[str] = set()

    def visit(mod: str, stack: list[str]) -> None:
        if mod in stack:
            cycle = stack[stack.index(mod) :] + [mod]
            raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
        if mod in done:
            return
        for dep in sorted(graph[mod]):
            visit(dep, [*stack, mod])
        done.add(mod)

    for mod in sorted(graph):
        visit(mod, [])


def test_the_cycle_check_sees_function_level_and_relative_imports(tmp_path):
    """The scanner itself: an import inside a function counts, a TYPE_CHECKING one does not."""
    path = PKG / "suite_loader.py"
    assert "ertrl_bench.registry" in _imports("ertrl_bench.suite_loader", path)
    components = _imports("ertrl_bench.components", PKG / "components.py")
    assert "ertrl_bench.batch" not in components  # imported for annotations only


def test_the_contracts_are_a_leaf_module():
    """``components`` (the protocols) imports nothing of the package but its error class, so
    any module can import the contracts; building components is ``registry``'s job."""
    assert _imports("ertrl_bench.components", PKG / "components.py") == {"ertrl_bench.errors"}


def _package_imports(prefix: str) -> dict[str, set[str]]:
    """``{module: the ertrl_bench modules it imports}`` for every module under ``prefix``."""
    return {
        mod: _imports(mod, path)
        for mod, path in MODULES.items()
        if mod == prefix or mod.startswith(prefix + ".")
    }


def _under(mod: str, prefix: str) -> bool:
    return mod == prefix or mod.startswith(prefix + ".")


def test_measures_and_the_report_are_two_layers():
    """Runs and data builds use ``measures``; ``analysis`` (the report) only reads results.

    Nothing but the CLI imports the report, so a run never depends on it; the report imports
    the statistics (``stats``, ``settling``), the results schema and the file writers, never
    the runner, the data cache, a component, the probe or the W2 (it reads what runs and
    builds recorded)."""
    report_users = {
        mod
        for mod, path in MODULES.items()
        if not _under(mod, "ertrl_bench.analysis")
        and any(_under(dep, "ertrl_bench.analysis") for dep in _imports(mod, path))
    }
    assert report_users <= {"ertrl_bench.cli"}, report_users
    # statistics over recorded numbers (the report's, and where runs settle), not a measure
    # of runs or data (probe, W2: fitted at run and build time, read back from the results)
    allowed = (
        "ertrl_bench.analysis",
        "ertrl_bench.measures.stats",
        "ertrl_bench.measures.settling",
    )
    allowed_modules = {
        "ertrl_bench.errors",
        "ertrl_bench.lazy",  # the lazy-export helper of every package's __init__ (stdlib only)
        "ertrl_bench.results_schema",
        "ertrl_bench.data.store",
    }
    for mod, deps in _package_imports("ertrl_bench.analysis").items():
        bad = {
            d for d in deps if d not in allowed_modules and not any(_under(d, a) for a in allowed)
        }
        assert not bad, f"{mod} (report layer) imports {sorted(bad)}"


def test_the_layering_check_sees_a_measure_in_the_report(tmp_path):
    """The scanner behind the layering test finds ``measures`` imports in the report modules."""
    assert "ertrl_bench.measures.stats" in _imports(
        "ertrl_bench.analysis.tables", PKG / "analysis" / "tables.py"
    )
    assert "ertrl_bench.measures.probe" in _imports("ertrl_bench.runner", PKG / "runner.py")
