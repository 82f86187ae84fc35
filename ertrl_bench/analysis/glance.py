"""Results tables for README.md and results/<study>/NOTES.md, generated from a report's CSVs.

A document holds a marked block; only the block is rewritten, the prose around it is ours::

    <!-- generated:study begin -->              (in results/<study>/NOTES.md: that study)
    <!-- generated:glance results/a results/b begin -->   (in README.md: those studies)
    ...
    <!-- generated:... end -->

``ertrl-bench report <study>`` rewrites its NOTES.md block; ``python -m
ertrl_bench.analysis.glance`` rewrites every block of README.md and results/*/NOTES.md from the
committed CSVs (``--check``: exit 1 and name the file when one is out of date). The numbers
are read from ``returns.csv``, ``ttest.csv`` and ``rank_stability.csv``, never typed by hand;
paper numbers come from the packaged authors' tables (``paper_scale``).
"""

from __future__ import annotations

import csv
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from ertrl_bench.data.store import atomic_write_text

from . import paper_scale
from .markdown import verdict
from .tables import ALL_TIED, PROTOCOL_ORDER, UNSTABLE, ordered, rank_verdicts, split_label

__all__ = ["study_block", "glance_block", "sync_text", "sync_file", "main"]

HEADLINE = ("moderate", "non_prior")  # the paper's headline column: OOD, non-prior context
_BLOCK = re.compile(
    r"(<!-- generated:(?P<kind>study|glance)(?P<args>[^>]*?) begin -->\n)(?P<body>.*?)"
    r"(<!-- generated:(?P=kind) end -->)",
    re.S,
)


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _num(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _f(x: float, digits: int = 1) -> str:
    return "—" if x != x else f"{x:.{digits}f}"


def _p(x: float) -> str:
    return "—" if x != x else (f"{x:.2g}" if x >= 1e-3 else f"{x:.1e}")


def _columns(rows: Sequence[dict]) -> list[tuple[str, str]]:
    protos = ordered((r["protocol"] for r in rows), PROTOCOL_ORDER)
    return [
        (s, p)
        for s in ("train", "moderate")
        for p in protos
        if any((r["split"], r["protocol"]) == (s, p) for r in rows)
    ]


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in body),
        "",
    ]


def _converged(study: Path) -> tuple[int, int, int]:
    """(unstable columns, all-tied columns, columns) from the study's ``rank_stability.csv``;
    none from one in the format of before 2026-12-06 (``kendall_tau``): rerun the report."""
    rows = _rows(study / "rank_stability.csv")
    if rows and "n_resolved_pairs" not in rows[0]:  # written before 2026-12-06: no verdict
        return 0, 0, 0
    verdicts = list(rank_verdicts(rows).values())
    return verdicts.count(UNSTABLE), verdicts.count(ALL_TIED), len(verdicts)


def study_block(study: Path) -> str:
    """The study's tables: both scales (the authors' with paper rows), the headline comparison
    with its power, and whether rankings were stable."""
    rows = _rows(study / "returns.csv")
    lines: list[str] = []
    for env in ordered(r["env"] for r in rows):
        ours = [r for r in rows if r["env"] == env and r["scale"] == "ours"]
        cols = _columns(ours)
        seeds = "/".join(sorted({r["n_seeds"] for r in ours}))
        evals = "/".join(sorted({r["n_evals"] for r in ours if r["n_evals"]})) or "?"
        header = ["method", *(f"{split_label(s)} {p}" for s, p in cols)]
        lines += [
            f"**{env}**, our normalizer: mean ± s.d. (ddof 1) over {seeds} seeds of the mean "
            f"over tasks; a task's score is the mean of a run's last {evals} evaluations "
            "(`returns.csv`).",
            "",
        ]
        body = []
        for method in ordered(r["method"] for r in ours):
            cell = {(r["split"], r["protocol"]): r for r in ours if r["method"] == method}
            body.append(
                [method, *(f"{_f(_num(cell[c]['mean']))} ± {_f(_num(cell[c]['std']))}"
                           if c in cell else "—" for c in cols)]
            )  # fmt: skip
        lines += _table(header, body)
        theirs = [r for r in rows if r["env"] == env and r["scale"] == "authors"]
        if theirs:
            lines += [
                f"**{env}**, the authors' normalizer (mean ± s.d. with ddof 0, as the paper's "
                "tables); *paper* rows: the authors' published numbers (5 seeds).",
                "",
            ]
            body = []
            for method in ordered(r["method"] for r in theirs):
                cell = {(r["split"], r["protocol"]): r for r in theirs if r["method"] == method}
                body.append(
                    [method, *(f"{_f(_num(cell[c]['mean']))} ± {_f(_num(cell[c]['std_ddof0']))}"
                               if c in cell else "—" for c in cols)]
                )  # fmt: skip
                paper = [paper_scale.paper_number(env, method, s, p) for s, p in cols]
                if any(paper):
                    body.append(
                        [f"*paper, {method}*",
                         *(f"*{x[0]:.1f} ± {x[1]:.1f}*" if x else "—" for x in paper)]
                    )  # fmt: skip
            lines += _table(header, body)
        else:
            lines += [f"No authors' normalizer for {env}: our scale only.", ""]
        lines += _headline(study, env)
    bad, tied, total = _converged(study)
    if total:
        verdict = (
            "**not converged**" if 2 * bad >= total
            else "**all tied**: no ranking, the comparisons bound differences by their MDE"
            if tied == total else "stable enough to rank"
        )  # fmt: skip
        lines += [
            f"Method rankings between consecutive evaluations of the scoring window: unstable "
            f"(pairs of methods separated beyond seed noise swap order) in {bad} of {total} "
            f"columns, all tied (no pair separated at two consecutive evaluations) in {tied}: "
            f"{verdict} (`rank_stability.csv`).",
            "",
        ]
    return "\n".join(lines)


def _headline(study: Path, env: str) -> list[str]:
    split, proto = HEADLINE
    tests = [
        t for t in _rows(study / "ttest.csv")
        if (t["env"], t.get("scale", "ours"), t["split"], t["protocol"]) == (env, "ours", split, proto)
    ]  # fmt: skip
    if not tests:
        return []
    ref = tests[0]["method"]
    lines = [
        f"{ref} vs each other method, {split_label(split)} ({split}) {proto}: difference of "
        "means [95% agent-bootstrap CI], Welch's two-sided p, its q (Benjamini-Hochberg over "
        "this column's comparisons), the authors' one-sided p, "
        f"P({ref} > other) [95% CI], and the smallest difference detectable with 80% power "
        "(`ttest.csv`).",
        "",
    ]
    body = []
    for t in tests:
        p, mde = _num(t["welch_p"]), _num(t["mde_80"])
        numbers = ("welch_p", "welch_q", "diff", "mde_80")
        says = verdict({**t, **{k: _num(t.get(k, "nan")) for k in numbers}})  # the report's words
        body.append(
            [t["baseline"], f"{t['n_method']} vs {t['n_baseline']}",
             f"{_num(t['diff']):+.1f} [{_f(_num(t['diff_ci_low']))}, {_f(_num(t['diff_ci_high']))}]",
             _p(p), _p(_num(t.get("welch_q", "nan"))), _p(_num(t["authors_p"])),
             f"{_f(_num(t['poi']), 2)} [{_f(_num(t['poi_ci_low']), 2)}, {_f(_num(t['poi_ci_high']), 2)}]",
             _f(mde), says]
        )  # fmt: skip
    header = [
        "vs",
        "seeds",
        "Δ [95% CI]",
        "Welch p",
        "q",
        "authors' p",
        "P(X > Y)",
        "MDE",
        "what it says",
    ]
    return lines + _table(header, body)


def _span(values: Sequence[float], fmt: str) -> str:
    """``low-high`` of the finite values, or the missing mark when there is none (one seed)."""
    finite = [v for v in values if math.isfinite(v)]
    return f"{min(finite):{fmt}}-{max(finite):{fmt}}" if finite else "—"


def glance_block(studies: Sequence[str], root: Path = Path(".")) -> str:
    """README's one line per study (``studies``: folders relative to ``root``, the repository):
    the headline column (OOD non-prior) for the reference method."""
    split, proto = HEADLINE
    body = []
    for name in studies:
        study = root / name
        rows = [
            r for r in _rows(study / "returns.csv")
            if (r["scale"], r["split"], r["protocol"]) == ("ours", split, proto)
        ]  # fmt: skip
        tests = [
            t for t in _rows(study / "ttest.csv")
            if (t.get("scale", "ours"), t["split"], t["protocol"]) == ("ours", *HEADLINE)
        ]  # fmt: skip
        if not rows or not tests:
            continue
        ref = tests[0]["method"]
        mine = next(r for r in rows if r["method"] == ref)
        mdes = [_num(t["mde_80"]) for t in tests]
        ps = [_num(t["welch_p"]) for t in tests]
        bad, tied, total = _converged(study)
        body.append(
            [f"[{study.name}]({name}/NOTES.md)", ref, mine["n_seeds"],
             f"{_f(_num(mine['mean']))} [{_f(_num(mine['mean_ci_low']))}, "
             f"{_f(_num(mine['mean_ci_high']))}]",
             _span(ps, ".2f"),
             _span(mdes, ".1f"),
             "too few seeds" if int(mine["n_seeds"]) < 2
             else "no" if total and 2 * bad >= total else "all tied" if total and tied == total
             else f"yes ({tied} of {total} columns all tied)" if tied else "yes"]
        )  # fmt: skip
    header = ["study", "reference", "seeds", f"its mean, {split_label(split)} {proto} [95% CI]",
              "Welch p vs each other method", "MDE (80% power)", "converged"]  # fmt: skip
    note = [
        "Normalized return on our normalizer; MDE = the smallest difference from each other "
        "method the study could have detected (80% power, two-sided alpha 0.05). Generated "
        "from each study's `returns.csv`, `ttest.csv` and `rank_stability.csv`.",
        "",
    ]
    return "\n".join(_table(header, body) + note)


def sync_text(text: str, root: Path, study: Path | None = None) -> str:
    """``text`` with every generated block rewritten (``study``: the folder of a NOTES.md)."""

    def repl(m: re.Match) -> str:
        if m["kind"] == "study":
            if study is None:
                return m[0]
            body = study_block(study)
        else:
            body = glance_block(m["args"].split(), root)
        return m[1] + body + ("" if body.endswith("\n") else "\n") + m[5]

    return _BLOCK.sub(repl, text)


def sync_file(path: Path, root: Path, study: Path | None = None, check: bool = False) -> bool:
    """Rewrite ``path``'s generated blocks; True when it was (or, with ``check``, would be)
    changed."""
    text = path.read_text(encoding="utf-8")
    new = sync_text(text, root, study)
    if new != text and not check:
        atomic_write_text(path, new)  # a symlinked NOTES.md is replaced, never written through
    return new != text


def documents(root: Path) -> list[tuple[Path, Path | None]]:
    """README.md and every results/<study>/NOTES.md holding a block, with its study."""
    out = [(root / "README.md", None)] if (root / "README.md").is_file() else []
    out += [(p, p.parent) for p in sorted((root / "results").glob("*/NOTES.md"))]
    return [(p, s) for p, s in out if _BLOCK.search(p.read_text(encoding="utf-8"))]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    root = Path(next((a for a in args if a != "--check"), "."))
    stale = [p for p, s in documents(root) if sync_file(p, root, s, check=check)]
    for p in stale:
        print(
            f"{p}: {'out of date, run python -m ertrl_bench.analysis.glance' if check else 'rewritten'}"
        )
    return 1 if check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
