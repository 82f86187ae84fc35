"""``Strict``: the one base class of every options model (suites, components, plugins), and
``format_validation_error``: how a failed validation of one reads to a user (one line per
problem, each with its YAML path).

A leaf module (pydantic only), so a component can subclass it without importing the suite
machinery of ``ertrl_bench.config``.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable

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


def _models(annotation) -> list[type[BaseModel]]:
    """The options models an annotation may hold (``X``, ``X | None``, ``list[X]``,
    ``dict[str, X]``, unions of those): where a misspelt key's siblings are looked up."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        args = args[:1]
    elif origin in (dict, typing.Mapping, typing.MutableMapping) or (
        isinstance(origin, type) and issubclass(origin, dict)
    ):
        args = args[1:]
    elif origin not in (list, tuple, set, frozenset, typing.Union, types.UnionType):
        return []
    return [m for a in args for m in _models(a)]


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """The keys allowed beside the unknown one at ``loc`` (its path from ``model``); None
    where the path leaves the options models (free-form params, several possible models)."""
    current = [model]
    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # a list index: same models
        named = [m for m in current if _labels(part, m)]
        if named:  # pydantic's label of the union branch it tried
            current = named
            continue
        fields = [m.model_fields[part] for m in current if part in m.model_fields]
        if len(fields) != 1:
            return None
        current = _models(fields[0].annotation) or current  # dict[str, X]: the key is a part
        if not current:
            return None
    if len(current) != 1:
        return None
    return [f.alias or name for name, f in current[0].model_fields.items()]


def _labels(part, model: type[BaseModel]) -> bool:
    """Whether a location part is pydantic's label of ``model`` as a union branch
    (``MethodSpec``, ``function-after[_check(), MethodSpec]``)."""
    name = model.__name__
    return isinstance(part, str) and (part == name or part.endswith((f"[{name}]", f", {name}]")))


def _unknown_key_message(key, known: list[str] | None) -> str:
    message = "unknown field (check its spelling)"
    if not known:
        return message
    close = difflib.get_close_matches(str(key), known, n=1)
    if close:
        return f"unknown field; did you mean {close[0]!r}?"
    return f"{message}; known: {', '.join(sorted(known))}"


def format_validation_error(
    exc: ValidationError,
    prefix: str | Callable[[object], str] = "",
    model: type[BaseModel] | None = None,
) -> list[str]:
    """One line per problem, ``PATH: what is wrong``, PATH after ``prefix`` (or after
    ``prefix(key)``, the top-level key the problem is in: options merged from several places of
    a suite, each named where it was written). With ``model`` (the model validated), an unknown
    key also gets the closest known key, or the list of known keys."""
    problems = []
    seen = set()
    for err in exc.errors():
        if err["type"] == "string_type" and err["loc"][-1:] == ("str",):
            if isinstance(err["input"], dict):
                continue  # a mapping is meant as the union's other branch (an inline method),
                # whose own errors follow: "should be a valid string" would only mislead
        path = _loc_to_path(tuple(err["loc"]))
        where = prefix(err["loc"][0] if err["loc"] else None) if callable(prefix) else prefix
        if where:
            path = where if path == "(top level)" else f"{where}.{path}"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            loc = tuple(err["loc"])
            known = _known_keys(model, loc) if model is not None and loc else None
            msg = _unknown_key_message(loc[-1] if loc else "", known)
        line = f"{path}: {msg}"
        if line not in seen:
            seen.add(line)
            problems.append(line)
    return problems
