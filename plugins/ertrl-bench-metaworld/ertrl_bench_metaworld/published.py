"""Published ML1 numbers for FOCAL and CSRO, beside ours where the definitions match.

The numbers live in ``reference/published_ml1.json`` (sources, tables, what each source did;
``reference/published_ml1.md`` says how each differs from our study). A source is *comparable*
when it reports what our report's ``success.csv`` holds: a success rate in percent, on goals
unseen in training but drawn from the training distribution (our ``iid`` split), with the
context protocol it names. Only those entries get our number beside them; the others are
listed with the reason they are not compared. ``ertrl-bench metaworld-published [RESULTS]``
prints the table (``plugin.register_commands``).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import ValidationError, model_validator

from ertrl_bench.errors import ErtrlError
from ertrl_bench.options import Strict, format_validation_error

#: what the report writes when some run has a success rate (ertrl_bench.analysis.report)
SUCCESS_CSV = "success.csv"


class Source(Strict):
    """One publication (or repository) and how it produced its numbers."""

    id: str
    cite: str
    url: str
    where: str  # the table / section the numbers were read from
    read_from: str
    metric: Literal["success_rate_percent", "score_unstated"]
    spread: str  # what the ± means, as the source says
    seeds: int | None
    split: str
    protocol: str
    data: str
    budget: str
    success_definition: str
    metaworld_version: str
    comparable: bool
    our_split: str | None = None  # comparable sources: the split / protocol of ours that matches
    our_protocol: str | None = None
    why_not_comparable: str | None = None

    @model_validator(mode="after")
    def _says_how_it_compares(self):
        if self.comparable and not (
            self.metric == "success_rate_percent" and self.our_split and self.our_protocol
        ):
            raise ValueError(
                f"source {self.id!r}: a comparable source reports success_rate_percent and names"
                " our_split and our_protocol"
            )
        if not self.comparable and not self.why_not_comparable:
            raise ValueError(f"source {self.id!r}: say why_not_comparable")
        return self


class Entry(Strict):
    """One published number: ``value ± spread`` of ``published_method`` on ``published_env``."""

    source: str
    env: str  # our family name
    published_env: str
    method: str  # our method name
    published_method: str
    value: float
    spread: float


class NotFound(Strict):
    what: str
    note: str


class Published(Strict):
    about: str
    sources: list[Source]
    entries: list[Entry]
    not_found: list[NotFound]

    @model_validator(mode="after")
    def _entries_name_a_source(self):
        ids = {s.id for s in self.sources}
        for e in self.entries:
            if e.source not in ids:
                raise ValueError(f"entry {e.published_method}/{e.published_env}: unknown source")
            if self.source(e.source).metric == "success_rate_percent" and not 0 <= e.value <= 100:
                raise ValueError(f"entry {e.published_method}/{e.published_env}: not a percent")
        return self

    def source(self, source_id: str) -> Source:
        return next(s for s in self.sources if s.id == source_id)


def load_published(path: Path | None = None) -> Published:
    """The packaged reference file (or ``path``), checked."""
    if path is None:
        text = resources.files(__package__).joinpath("reference/published_ml1.json").read_text()
        where = "the packaged reference/published_ml1.json"
    else:
        text, where = Path(path).read_text(), str(path)
    try:
        return Published.model_validate(json.loads(text))
    except ValidationError as exc:
        problems = "; ".join(format_validation_error(exc))
        raise ErtrlError(f"{where}: not a valid published-numbers file: {problems}") from exc
    except ValueError as exc:  # not JSON
        raise ErtrlError(f"{where}: not valid JSON: {exc}") from exc


def read_success_csv(results: Path) -> list[dict]:
    """Our success rates: the ``success.csv`` that ``ertrl-bench report`` writes in ``results``
    (a suite's results folder), or ``results`` itself when it is that file."""
    path = Path(results)
    path = path / SUCCESS_CSV if path.is_dir() else path
    if not path.is_file():
        raise ErtrlError(
            f"{path}: no such file. Point at a suite's results folder after `ertrl-bench report"
            f" <folder>` has written its {SUCCESS_CSV} (it does when some run has a success"
            " rate, i.e. a Meta-World family)"
        )
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    needed = {"env", "method", "split", "protocol", "n_seeds", "mean", "std"}
    if rows and not needed <= set(rows[0]):
        missing = ", ".join(sorted(needed - set(rows[0])))
        raise ErtrlError(f"{path}: not a report's {SUCCESS_CSV} (no column {missing})")
    return rows


def _num(text: str | None) -> float:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _same_method(ours: str, published: str) -> int:
    """2 when our method is the published one, 1 when it is that method on another backbone
    (``focal-iql`` for ``focal``: suites name backbone variants ``<method>-<backbone>``), else 0."""
    if ours == published:
        return 2
    return 1 if ours.startswith(published + "-") else 0


def beside_ours(published: Published, ours: Sequence[Mapping[str, str]] | None) -> list[dict]:
    """One row per entry of a comparable source: the published value and ours on the matching
    split x protocol (mean over seeds, its s.d. and its standard error = s.d. / sqrt(seeds)),
    NaN where our study has no such cell (yet). Our method is the published one by name, or
    else the same method on another backbone (``ours_method`` says which)."""
    rows = []
    for e in published.entries:
        src = published.source(e.source)
        if not src.comparable:
            continue
        match = sorted(
            (
                r
                for r in ours or ()
                if (r["env"], r["split"], r["protocol"]) == (e.env, src.our_split, src.our_protocol)
                and _same_method(r["method"], e.method)
            ),
            key=lambda r: -_same_method(r["method"], e.method),
        )
        mine = match[0] if match else {}
        n, sd = _num(mine.get("n_seeds")), _num(mine.get("std"))
        rows.append(
            {
                "source": src.id,
                "env": e.env,
                "method": e.method,
                "published": e.value,
                "published_spread": e.spread,
                "published_spread_kind": src.spread,
                "ours_method": mine.get("method", ""),
                "our_split": src.our_split,
                "our_protocol": src.our_protocol,
                "ours_mean": _num(mine.get("mean")),
                "ours_std": sd,
                "ours_se": sd / math.sqrt(n) if n > 1 else math.nan,
                "ours_seeds": int(n) if n == n else 0,
            }
        )
    return rows


def _f(x: float) -> str:
    return "—" if x != x else f"{x:.1f}"


def markdown(published: Published, ours: Sequence[Mapping[str, str]] | None = None) -> str:
    """The comparison as markdown: comparable entries with ours beside, then the others with
    the reason they are not compared, then what was searched without a number."""
    lines = [
        "# Meta-World ML1: published numbers beside ours",
        "",
        "Where the definitions match (success rate in %, goals unseen in training but from the"
        " training distribution = our `iid` split, the same context protocol). Data and budgets"
        " still differ (reference/published_ml1.md in the plugin): read a gap as the whole"
        " setup's, not a method's.",
        "",
    ]
    rows = beside_ours(published, ours)
    if rows:
        lines += [
            "| env | method | published (source) | ± (kind) | ours: method, split, protocol"
            " | ours mean | ± s.e. | s.d. | seeds |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['env']} | {r['method']} | {r['published']:.2f} ({r['source']})"
                f" | {r['published_spread']:.2f} ({r['published_spread_kind']})"
                f" | {r['ours_method'] or '—'}, {r['our_split']}, {r['our_protocol']}"
                f" | {_f(r['ours_mean'])}"
                f" | {_f(r['ours_se'])} | {_f(r['ours_std'])} | {r['ours_seeds'] or '—'} |"
            )
        if ours is None:
            lines += ["", "Ours: not given (pass a results folder with its success.csv)."]
        lines.append("")
    lines += ["## Not compared", ""]
    for src in published.sources:
        if src.comparable:
            continue
        got = [e for e in published.entries if e.source == src.id]
        vals = ", ".join(
            f"{e.published_method} {e.value:.2f} ± {e.spread:.2f} ({e.published_env})" for e in got
        )
        lines.append(f"- {src.id} ({src.where}): {vals}. Why not: {src.why_not_comparable}.")
    lines += ["", "## Searched, no number recorded", ""]
    lines += [f"- {n.what}: {n.note}." for n in published.not_found]
    return "\n".join(lines) + "\n"
