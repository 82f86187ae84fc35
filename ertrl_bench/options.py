"""``Strict``: the one base class of every options model (suites, components, plugins), and
``format_validation_error``: how a failed validation of one reads to a user (one line per
problem, each with its YAML path).

A leaf module (pydantic only), so a component can subclass it without importing the suite
machinery of ``ertrl_bench.config``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt option must never be silently ignored."""

    model_config = ConfigDict(extra="forbid")


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
        if err["type"] == "string_type" and err["loc"][-1:] == ("str",):
            if isinstance(err["input"], dict):
                continue  # a mapping is meant as the union's other branch (an inline method),
                # whose own errors follow: "should be a valid string" would only mislead
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
