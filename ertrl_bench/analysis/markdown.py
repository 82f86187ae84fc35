"""report.md: the markdown of a suite report, from the rows ``tables`` computed.

Formatting rules: a missing or non-finite number prints as an em dash, never ``nan``; split
columns use the paper's names (IID = train, OOD = moderate; ``docs/paper.md``, "Evaluation").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ertrl_bench.measures.stats import MAX_SEEDS

from .tables import AXIS_TITLES, PLAN_EFFECT, PROTOCOL_ORDER, SPLIT_ORDER, ordered, split_label

if TYPE_CHECKING:
    from .report import Report

__all__ = [
    "SPLIT_HEADERS", "MISSING", "render", "fmt_ci", "fmt_ms", "fmt_mean_ci", "scoring_rule",
    "verdict", "fmt_seeds",
]  # fmt: skip

#: Column headers of the splits in report.md.
SPLIT_HEADERS = {
    "train": "IID (train)",
    "moderate": "OOD (moderate)",
    "extreme": "extreme",
    "iid": "iid (ours, off-grid)",
}


MISSING = "—"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _f(x: Any, digits: int = 1) -> str:
    return f"{x:.{digits}f}" if _finite(x) else MISSING


def fmt_seeds(n: Any) -> str:
    """A seeds-needed count (``tables.seeds_needed``): the number, ``>1000`` past
    ``stats.MAX_SEEDS`` (inf), the em dash when there was nothing to size from."""
    if isinstance(n, float) and math.isinf(n):
        return f">{MAX_SEEDS}"
    return f"{int(n)}" if _finite(n) else MISSING


def fmt_ci(r: Mapping) -> str:
    if not _finite(r["iqm"]):
        return MISSING
    return f"{_f(r['iqm'])} [{_f(r['ci_low'])}, {_f(r['ci_high'])}]"


def fmt_ms(r: Mapping) -> str:
    """``mean ± s.d.`` (the row's std: ddof 1 unless the table says otherwise)."""
    if not _finite(r["mean"]):
        return MISSING
    return f"{_f(r['mean'])} ± {_f(r['std'])}"


def fmt_mean_ci(r: Mapping) -> str:
    """``mean [95% CI] ± s.d.``: the mean over seeds, its agent-bootstrap CI, the sample s.d."""
    if not _finite(r["mean"]):
        return MISSING
    ci = f" [{_f(r['mean_ci_low'])}, {_f(r['mean_ci_high'])}]" if "mean_ci_low" in r else ""
    return f"{_f(r['mean'])}{ci} ± {_f(r['std'])}"


def scoring_rule(rows: Sequence[Mapping]) -> str:
    """What a score averages, from the rows' ``n_evals`` (the suite's ``final_evals``)."""
    windows = sorted({r.get("n_evals") for r in rows} - {None, ""})
    if not windows:
        return "a run's score on a task is its final evaluation window (not recorded)"
    k = "/".join(str(w) for w in windows)
    return f"a run's score on a task is the mean of its last {k} evaluations"


def seeds_phrase(rows: Sequence[Mapping]) -> str:
    counts = sorted({int(r["n_seeds"]) for r in rows})
    return "/".join(str(c) for c in counts) if counts else "0"


def _fmt_p(p: Any) -> str:
    if not _finite(p):
        return MISSING
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def verdict(t: Mapping) -> str:
    """What a comparison row lets one say, in the words the docs use (never "does not beat"):
    a difference at Welch p < 0.05 is said to survive, or not, the column's FDR adjustment
    (``welch_q``: the reference vs every other method in that column)."""
    ref, base = t["method"], t["baseline"]
    if _finite(t["welch_p"]) and t["welch_p"] < 0.05:
        better, worse = (ref, base) if t["diff"] > 0 else (base, ref)
        q = t.get("welch_q", float("nan"))
        if not _finite(q) or q < 0.05:
            return f"{better} above {worse} (Welch p < 0.05{', q < 0.05' if _finite(q) else ''})"
        return f"{better} above {worse} at p < 0.05, not after FDR adjustment (q = {_fmt_p(q)})"
    if _finite(t["mde_80"]):
        return f"no difference larger than {t['mde_80']:.1f} could be detected"
    return "too few seeds to test"


def _multiplicity_markdown(tsub: Sequence[Mapping]) -> list[str]:
    """How many of an env's comparisons (our scale) reach p < 0.05, and how many keep it after
    the column's and the whole table's FDR adjustment: one reading of many tests at once."""
    tested = [t for t in tsub if _finite(t["welch_p"])]
    if not tested:
        return []
    ref = tested[0]["method"]
    hits = sum(t["welch_p"] < 0.05 for t in tested)
    col = sum(_finite(t.get("welch_q")) and t["welch_q"] < 0.05 for t in tested)
    table = sum(_finite(t.get("welch_q_table")) and t["welch_q_table"] < 0.05 for t in tested)
    return [
        f"Many comparisons at once: of the {len(tested)} tests of {ref} vs another method below "
        f"(every protocol x split, our scale), {hits} reach Welch p < 0.05 (about "
        f"{0.05 * len(tested):.1f} would by chance alone if no method differed); {col} keep "
        "q < 0.05 after the Benjamini-Hochberg adjustment within their column (ttest.csv "
        f"`welch_q`), {table} after the adjustment over all {len(tested)} "
        "(`welch_q_table`).",
        "",
    ]


def _comparison_markdown(tsub: Sequence[Mapping], authors_scale: bool = False) -> list[str]:
    """One row per split x baseline: effect size with CI, both tests, P(X > Y), power.
    ``authors_scale``: the same comparison on the authors' scale, under a short heading."""
    ref = tsub[0]["method"]
    intro = [
        f"{ref} vs each other method, over per-seed scores (mean over tasks): Δ = difference of "
        "means [95% agent-bootstrap CI]; Welch = Welch's t-test, two-sided; q = Welch's p "
        "adjusted for the column's comparisons (Benjamini-Hochberg over the rows of one split: "
        f"{ref} vs every other method); authors' = the "
        "paper's test (one-sided, ddof-0 stds, df = n - 1; about half of Welch's p near "
        f"0.05); P({ref} > other) = rliable's probability of improvement [95% CI]; MDE = the "
        "smallest difference Welch's test detects with 80% power at two-sided alpha 0.05, "
        f"given the observed spread; seeds for MDE ≤ {PLAN_EFFECT:g} = the seeds a method that "
        "bring the MDE there at the observed spread.",
        "",
    ]
    if authors_scale:
        intro = [
            f"The same comparison on the authors' scale ({ref} vs each other method; ttest.csv, "
            "scale = authors):",
            "",
        ]
    body = []
    for t in sorted(
        tsub, key=lambda t: SPLIT_ORDER.index(t["split"]) if t["split"] in SPLIT_ORDER else 9
    ):
        delta = (
            f"{t['diff']:+.1f} [{_f(t['diff_ci_low'])}, {_f(t['diff_ci_high'])}]"
            if _finite(t["diff"]) else MISSING
        )  # fmt: skip
        poi = (
            f"{t['poi']:.2f} [{t['poi_ci_low']:.2f}, {t['poi_ci_high']:.2f}]"
            if _finite(t["poi"]) else MISSING
        )  # fmt: skip
        body.append(
            [SPLIT_HEADERS.get(t["split"], t["split"]), t["baseline"],
             f"{t['n_method']} vs {t['n_baseline']}", delta, _fmt_p(t["welch_p"]),
             _fmt_p(t.get("welch_q")), _fmt_p(t["authors_p"]), poi, _f(t["mde_80"]), fmt_seeds(t.get("seeds_mde_10")),
             verdict(t)]
        )  # fmt: skip
    header = ["split", "vs", "seeds", "Δ [95% CI]", "Welch p", "q", "authors' p",
              f"P({ref} > other)", "MDE (80%)", f"seeds for MDE ≤ {PLAN_EFFECT:g}",
              "what it says"]  # fmt: skip
    return intro + _md_table(header, body)


def _convergence_markdown(report: Report) -> list[str]:
    if not report.rank_rows and not report.convergence_rows:
        return []
    from .tables import ALL_TIED, RANK_ALPHA, TAU_STABLE, rank_verdicts

    bad, total = report.unstable
    verdicts = rank_verdicts(report.rank_rows)
    tied = list(verdicts.values()).count(ALL_TIED)
    lines = ["## Convergence", ""]
    lines.append(
        f"Method rankings between consecutive evaluations in the scoring window "
        f"(rank_stability.csv): at each evaluation two methods are ordered when Welch's t-test "
        f"over seeds separates their scores (two-sided p < {RANK_ALPHA}) and "
        f"tied otherwise; a pair resolved at both evaluations is reversed when its order "
        f"swaps; gamma = (kept - reversed) / resolved. A column is unstable when a gamma is "
        f"below {TAU_STABLE} (more than a quarter of its resolved pairs reverse), all tied "
        f"when no pair is resolved at two consecutive evaluations (no ranking to flip: the "
        f"study can only say that no difference larger than the MDE was detected). "
        f"{bad} of {total} columns are unstable, {tied} all tied: the study is "
        + ("**not converged**, and no method is bolded as best." if not report.converged
           else "**all tied**: no method is separated from another, none is bolded as best."
           if report.all_tied else "converged enough to rank.")
    )  # fmt: skip
    lines.append("")
    body = [
        [r["env"], split_label(r["split"]), r["protocol"], f"{r['from_step']} → {r['to_step']}",
         f"{r['n_resolved_pairs']} of {r['n_pairs']}", str(r["n_reversed"]), _f(r["gamma"], 2),
         verdicts[(r["env"], r["split"], r["protocol"])]]
        for r in report.rank_rows
    ]  # fmt: skip
    header = ["env", "split", "protocol", "steps", "resolved pairs", "reversed", "gamma",
              "column"]  # fmt: skip
    lines += _md_table(header, body)
    lines.append(
        "Change of each method's score (mean over tasks) over the scoring window, last "
        "evaluation minus the window's first, mean over seeds [95% t-interval] "
        "(convergence.csv):"
    )
    lines.append("")
    body = [
        [c["env"], split_label(c["split"]), c["protocol"], c["method"],
         f"{c['from_step']} → {c['to_step']}",
         f"{c['change']:+.1f} [{_f(c['change_ci_low'])}, {_f(c['change_ci_high'])}]"
         if _finite(c["change"]) else MISSING]
        for c in report.convergence_rows
    ]  # fmt: skip
    return lines + _md_table(["env", "split", "protocol", "method", "steps", "change"], body)


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _md_table(header: Sequence[str], body: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in body)
    return lines + [""]


def _separated_best(cells: Sequence[Mapping]) -> str | None:
    """The method with the highest mean among ``cells`` (one column's rows) when Welch's t-test
    over seeds (from each row's mean, s.d. and seeds) separates it from every other method
    (p < ``RANK_ALPHA``, as the rank-stability check), else None: a "best" within seed noise
    of another method is not bolded."""
    from scipy import stats as sps

    from .tables import RANK_ALPHA

    cells = [c for c in cells if _finite(c["mean"])]
    if len(cells) < 2:
        return None
    top = max(cells, key=lambda c: c["mean"])
    for c in cells:
        if c is top:
            continue
        n1, n2 = int(top["n_seeds"]), int(c["n_seeds"])
        if n1 < 2 or n2 < 2 or not (_finite(top["std"]) and _finite(c["std"])):
            return None
        p = sps.ttest_ind_from_stats(
            top["mean"], top["std"], n1, c["mean"], c["std"], n2, equal_var=False
        ).pvalue
        if not p < RANK_ALPHA:
            return None
    return top["method"]


def _columns(sub: Sequence[Mapping], splits: Sequence[str]) -> list[tuple[str, str]]:
    """A table's (split, protocol) columns: ``splits`` in order, each with the protocols that
    ``sub``'s rows have for it (in protocol order)."""
    have = {(r["split"], r["protocol"]) for r in sub}
    protocols = ordered((r["protocol"] for r in sub), PROTOCOL_ORDER)
    return [(s, p) for s in splits for p in protocols if (s, p) in have]


def _summary_markdown(rows: Sequence[Mapping], env: str, bold_best: bool = True) -> list[str]:
    """One table per env: method x (IID, OOD) x every protocol, paper-style mean ± std."""
    sub = [r for r in rows if r["env"] == env and r["split"] in ("train", "moderate")]
    if not sub:
        return []
    cols = _columns(sub, ("train", "moderate"))
    best = {c: _separated_best([r for r in sub if (r["split"], r["protocol"]) == c])
            for c in cols}  # fmt: skip
    body = []
    for method in ordered(r["method"] for r in sub):
        cells = {(r["split"], r["protocol"]): r for r in sub if r["method"] == method}
        line = [method]
        for c in cols:
            r = cells.get(c)
            text = fmt_ms(r) if r else MISSING
            bold = bold_best and r and r["method"] == best[c]
            line.append(f"**{text}**" if bold else text)
        body.append(line)
    header = ["method", *(f"{split_label(s)} {p}" for s, p in cols)]
    lines = [
        f"### {env}: summary (IID = train, OOD = moderate; mean ± s.d. over "
        f"{seeds_phrase(sub)} seeds, s.d. with ddof 1; "
        f"{'best in bold where Welch p < 0.05 vs every other method' if bold_best else 'nothing bolded: see Convergence'})",
        "",
        f"Score: {scoring_rule(sub)}, averaged over tasks.",
        "",
    ]
    return lines + _md_table(header, body)


def _authors_markdown(
    arows: Sequence[Mapping], expertise: Sequence[Mapping], env: str
) -> list[str]:
    """Our scores on the authors' scale (ddof-0 s.d., as their tables) beside a "paper" row per
    method taken from the packaged reference file (``paper_scale``)."""
    from . import paper_scale

    sub = [r for r in arows if r["env"] == env and r["split"] in ("train", "moderate")]
    if not sub:
        return []
    cols = _columns(sub, ("train", "moderate"))
    body = []
    for method in ordered(r["method"] for r in sub):
        cells = {(r["split"], r["protocol"]): r for r in sub if r["method"] == method}
        body.append([method, *(fmt_ms(_ddof0(cells[c])) if c in cells else MISSING for c in cols)])
        paper = [paper_scale.paper_number(env, method, s, p) for s, p in cols]
        if any(paper):
            body.append(
                [f"*paper, {method}*",
                 *(f"*{x[0]:.1f} ± {x[1]:.1f}*" if x else MISSING for x in paper)]
            )  # fmt: skip
    header = ["method", *(f"{split_label(s)} {p}" for s, p in cols)]
    lines = [
        f"### {env}: on the authors' scale (their per-task R_min / R_max; mean ± s.d. with "
        f"ddof 0 over {seeds_phrase(sub)} seeds, as the paper's tables; paper rows: 5 seeds)",
        "",
        "Our runs' raw per-task returns normalized with the ER-TRL authors' constants "
        "(ertrl_bench/analysis/authors_data/README.md); *paper* rows are the authors' published "
        f"numbers from the same package data. Score: {scoring_rule(sub)}, averaged over tasks; "
        "every number on this scale is in returns.csv (scale = authors).",
        "",
    ]
    lines += _md_table(header, body)
    for e in (x for x in expertise if x["env"] == env):
        lines.append(
            f"How expert our behavior data is, {split_label(e['split'])} ({e['split']}) tasks: "
            f"median per-task R_max ours {_f(e['rmax_ours_median'])} vs the authors' "
            f"{_f(e['rmax_authors_median'])}, i.e. our best behavior return scores "
            f"{_f(e['rmax_ours_on_authors_scale_median'])} on their scale (median over "
            f"{e['n_tasks']} tasks; ours recovered from the runs' return/normalized pairs)."
        )
        lines.append("")
    return lines


def _ddof0(r: Mapping) -> dict:
    return {**r, "std": r.get("std_ddof0", r["std"])}


def _seeds(cells: Iterable[Mapping]) -> str:
    return max(f"{c['n_seeds']}/{c['n_expected']}" for c in cells)


def _iqm_table(sub: Sequence[Mapping], splits: Sequence[str], bold_best: bool) -> list[str]:
    """method x split: IQM [95% CI], the best per split in bold when ``bold_best``."""
    best = {s: _separated_best([r for r in sub if r["split"] == s]) for s in splits}
    body = []
    for method in ordered(r["method"] for r in sub):
        cells = {r["split"]: r for r in sub if r["method"] == method}
        ci = []
        for s in splits:
            c = cells.get(s)
            text = fmt_ci(c) if c else MISSING
            bold = bold_best and c and c["method"] == best[s]
            ci.append(f"**{text}**" if bold else text)
        body.append([method, _seeds(cells.values()), *ci])
    return _md_table(["method", "seeds", *(SPLIT_HEADERS.get(s, s) for s in splits)], body)


def _returns_markdown(
    rows: Sequence[Mapping],
    trows: Sequence[Mapping],
    arows: Sequence[Mapping] = (),
    expertise: Sequence[Mapping] = (),
    bold_best: bool = True,
    atrows: Sequence[Mapping] = (),
) -> list[str]:
    """Per env: the summary on both scales, then per protocol the IQM tables (ours, then the
    authors' scale where the family has one), the means on both scales, and the comparisons
    (ours, then the authors' scale). ``arows`` / ``atrows``: the authors'-scale rows."""
    lines: list[str] = []
    for env in ordered(r["env"] for r in rows):
        lines += _summary_markdown(rows, env, bold_best)
        lines += _multiplicity_markdown([t for t in trows if t["env"] == env])
        theirs = _authors_markdown(arows, expertise, env)
        lines += theirs or [
            f"{env} is not one of the paper's families: there is no authors' normalizer and no "
            "paper number for it, so its scores are on our scale only.",
            "",
        ]
        for proto in ordered((r["protocol"] for r in rows if r["env"] == env), PROTOCOL_ORDER):
            sub = [r for r in rows if r["env"] == env and r["protocol"] == proto]
            splits = ordered((r["split"] for r in sub), SPLIT_ORDER)
            headers = [SPLIT_HEADERS.get(s, s) for s in splits]
            lines.append(f"### {env} — {proto} context")
            lines.append("")
            lines.append(
                "IQM over seeds x tasks [95% agent-bootstrap CI] "
                f"({'in bold: the highest mean where Welch p < 0.05 vs every other method' if bold_best else 'nothing bolded: see Convergence'}); "
                f"{scoring_rule(sub)}:"
            )
            lines.append("")
            body_ms = []
            theirs = [r for r in arows if r["env"] == env and r["protocol"] == proto]
            tsplits_a = [x for x in splits if any(r["split"] == x for r in theirs)]
            for method in ordered(r["method"] for r in sub):
                cells = {r["split"]: r for r in sub if r["method"] == method}
                acells = {r["split"]: r for r in theirs if r["method"] == method}
                body_ms.append(
                    [method, _seeds(cells.values()),
                     *(fmt_mean_ci(cells[s]) if s in cells else MISSING for s in splits),
                     *(fmt_mean_ci(acells[s]) if s in acells else MISSING for s in tsplits_a)]
                )  # fmt: skip
            lines += _iqm_table(sub, splits, bold_best)
            if theirs:
                lines += [
                    "The same IQM [95% agent-bootstrap CI] on the authors' scale (their per-task "
                    "R_min / R_max; returns.csv, scale = authors):",
                    "",
                    *_iqm_table(theirs, tsplits_a, bold_best),
                ]
            lines.append(
                "Mean over seeds of the per-seed mean over tasks [95% agent-bootstrap CI] ± s.d. "
                f"(sample, ddof 1) over {seeds_phrase(sub)} seeds"
                + (", on our normalizer and on the authors' (their per-task R_min / R_max):"
                   if tsplits_a else ":")
            )  # fmt: skip
            lines.append("")
            a_headers = [f"{SPLIT_HEADERS.get(x, x)}, authors' scale" for x in tsplits_a]
            lines += _md_table(["method", "seeds", *headers, *a_headers], body_ms)
            tsub = [t for t in trows if t["env"] == env and t["protocol"] == proto]
            if tsub:
                lines += _comparison_markdown(tsub)
            tsub = [t for t in atrows if t["env"] == env and t["protocol"] == proto]
            if tsub:
                lines += _comparison_markdown(tsub, authors_scale=True)
    return lines


def _success_markdown(rows: Sequence[Mapping]) -> list[str]:
    """Success rate (%) per env: method x every split x protocol, mean ± s.d. over seeds. Only
    families that report success (Meta-World) have rows; without any, no section at all."""
    if not rows:
        return []
    lines = [
        "## Success rate",
        "",
        'For families whose environment reports success (Meta-World\'s `info["success"]`): '
        "a run's episode succeeds if the flag is true at any of its steps (Meta-World's "
        "convention), scored on the same episode as the return; a task's success is the "
        "fraction of its evaluation runs that succeeded, in percent; mean over tasks, then "
        f"mean ± s.d. (ddof 1) over seeds; {scoring_rule(rows)}. IQM and CIs: success.csv.",
        "",
    ]
    for env in ordered(r["env"] for r in rows):
        sub = [r for r in rows if r["env"] == env]
        cols = _columns(sub, ordered((r["split"] for r in sub), SPLIT_ORDER))
        body = []
        for method in ordered(r["method"] for r in sub):
            cells = {(r["split"], r["protocol"]): r for r in sub if r["method"] == method}
            body.append(
                [method, _seeds(cells.values()),
                 *(fmt_ms(cells[c]) if c in cells else MISSING for c in cols)]
            )  # fmt: skip
        lines += [f"### {env}: success rate (%)", ""]
        lines += _md_table(["method", "seeds", *(f"{split_label(sp)} {p}" for sp, p in cols)], body)
    return lines


def _success_curves_markdown(rows: Sequence[Mapping], figs: Mapping) -> list[str]:
    """The success rate's learning curves: only when some run records a success rate."""
    if not figs and not any(r["metric"] == "success" for r in rows):
        return []
    lines = [
        "### Success rate",
        "",
        "Success rate (%) vs gradient step, bands as above, from the runs whose family "
        "reports success; a run's point is the mean over the split's tasks of each task's "
        "success at that evaluation (as in Success rate); numbers: the rows of curves.csv "
        "with metric = success.",
        "",
    ]
    return lines + [f"![{env} success-rate curves]({p.name})" for env, p in figs.items()] + [""]


def _missing_markdown(missing: Mapping[str, Mapping[str, list[str]]], limit: int = 20) -> list[str]:
    lines = ["## Tasks without a normalized score", ""]
    if not missing:
        return lines + ["None: every evaluated task has a finite normalized score.", ""]
    lines.append(
        "Left out of every statistic. A finite return with no normalized score means the task's "
        "normalisation range is degenerate (R_min = R_max in its behavior data); a NaN return "
        "means the evaluation itself produced no number."
    )
    lines.append("")
    for env, by_cell in missing.items():
        tasks: dict[str, dict] = {}  # split/task -> protocols, runs, reasons
        for key, labels in by_cell.items():
            split, proto, task = key.split("/", 2)
            t = tasks.setdefault(f"{split}/{task}", {"protocols": [], "runs": set(), "finite": 0})
            t["protocols"].append(proto)
            t["runs"].update(label.split(" (")[0] for label in labels)
            t["finite"] += sum("return finite" in label for label in labels)
            t["cells"] = t.get("cells", 0) + len(labels)
        lines.append(
            f"- {env}: {len(tasks)} task(s) without a normalized score in at least one run"
            f" ({len(by_cell)} task x protocol cells)"
        )
        for name, t in list(tasks.items())[:limit]:
            runs = sorted(t["runs"])
            shown = ", ".join(runs[:6]) + (" ..." if len(runs) > 6 else "")
            why = (
                "degenerate range (return finite)" if t["finite"] == t["cells"]
                else "NaN return" if t["finite"] == 0
                else f"return finite in {t['finite']} of {t['cells']}"
            )  # fmt: skip
            lines.append(
                f"  - {name} ({', '.join(t['protocols'])}): {len(runs)} run(s) [{shown}]; {why}"
            )
        if len(tasks) > limit:
            lines.append(f"  - ... and {len(tasks) - limit} more")
    return lines + [""]


def render(report: Report, curve_figs, zmap_figs, success_figs=None) -> str:
    statuses = [p.status for p in report.problems]
    if report.n_expected:
        counts = (
            f"{report.n_done} of {report.n_expected} runs finished; "
            f"{statuses.count('failed')} failed, {statuses.count('missing')} missing or "
            f"unfinished, {statuses.count('invalid')} with unreadable results, "
            f"{statuses.count('no scores')} without any finite score."
        )
    else:
        counts = "No runs found: the suite lists none and the folder holds no run folders."
    lines = [f"# Results: {report.suite}", "", counts, ""]
    if not report.converged:
        bad, total = report.unstable
        lines += [
            f"**Not converged**: pairs of methods that differ beyond seed noise swap order "
            f"between the last evaluations in "
            f"{bad} of {total} columns (see Convergence); no method is bolded as best.",
            "",
        ]
    elif report.all_tied:
        lines += [
            "**All tied**: at no two consecutive evaluations of the scoring window does Welch's "
            "t-test over seeds separate two methods (see Convergence): no method is bolded as "
            "best, and the comparisons can only bound the difference (MDE).",
            "",
        ]
    if report.warnings:
        lines += [f"**{len(report.warnings)} warning(s)**: file(s) skipped, see Warnings.", ""]
    lines += [
        "Normalized return = 100 (R - R_min) / (R_max - R_min) per task (docs/paper.md). "
        "Split names as in the paper: **IID = the train split, OOD = the moderate split**; "
        "the extreme split and our extra off-grid `iid` split are reported under their own "
        "names, never pooled into IID or OOD. IQM = interquartile mean over all seeds x "
        "evaluation tasks. CIs are 95% agent-bootstrap intervals: whole runs (seeds) are "
        "resampled, because one seed's agent scores every task of a family, and the "
        "percentiles are expanded for few seeds (Hesterberg). No bootstrap reaches past the "
        "most extreme seed: on synthetic scores nominal 95% intervals cover the truth ~76% of "
        "the time with 3 seeds, ~93% with 5, ~95% with 20 (tests/test_stats.py). "
        "s.d. = sample standard "
        "deviation over seeds (ddof 1) unless a table says ddof 0 (the paper's tables). "
        f"{MISSING} = no finite value.",
        "",
        "## Normalized return",
        "",
    ]
    if report.rows:
        lines += _returns_markdown(
            report.rows, report.ttest_rows, report.authors_rows, report.expertise_rows,
            report.ranked, report.authors_ttest_rows,
        )  # fmt: skip
    else:
        lines += ["No finished runs yet.", ""]
    lines += _success_markdown(report.success_rows)
    lines += _convergence_markdown(report)
    if curve_figs or report.curve_rows:
        lines += ["## Learning curves", ""]
        lines += [
            "Normalized return vs gradient step, mean over seeds with its 95% t-interval band "
            "(one panel per split x protocol; numbers in curves.csv).",
            "",
        ]
        lines += [f"![{env} learning curves]({p.name})" for env, p in curve_figs.items()] + [""]
        lines += _success_curves_markdown(report.curve_rows, success_figs or {})

    lines += ["## Task-representation probe (RMSE to the task parameter, lower is better)", ""]
    if report.probe_rows:
        lines.append(
            "paper = the run's own probe, as the run fitted it (fresh 1000-transition draws per "
            "task, train + moderate tasks, 5 resamples; docs/paper.md). Mean ± std over seeds; "
            "resample std = mean within-run std over resamples."
        )
        lines.append("")
        body = [
            [p["env"], p["method"], p["variant"], p["model"], p["n_seeds"],
             f"{_f(p['rmse_mean'], 4)} ± {_f(p['rmse_std'], 4)}", _f(p["resample_std"], 4)]
            for p in report.probe_rows
        ]  # fmt: skip
        lines += _md_table(
            ["env", "method", "variant", "model", "seeds", "RMSE", "resample std"], body
        )
    else:
        lines += ["No finished run recorded a probe (metrics.json); the report fits none.", ""]
    if zmap_figs:
        lines += ["### Context encodings (one marker per protocol's context)", ""]
        lines += [f"![{env} z map]({p.name})" for env, p in zmap_figs.items()] + [""]

    split = report.gain_split
    ref = report.reference
    lines += [f"## {ref} gain vs behavior-policy diversity ({split_label(split)} = {split})", ""]
    unrecorded = ", ".join(report.unrecorded_diversity)
    how = (
        f"Behavior diversity not recorded for {unrecorded} (runs made before runs recorded"
        " their data's diversity, or data without behavior-policy weights such as scripted"
        " experts'): `ertrl-bench datasets diversity` measures it from the dataset cache into"
        " diversity.json; the report never opens the cache."
    )
    if not report.diversity:
        lines += [how if unrecorded else "No finished runs: no diversity.", ""]
    elif not report.gain_rows:
        lines += [f"No env has both diversity and results for {ref} and another method.", ""]
    else:
        lines.append(
            "avg W2 = mean pairwise Wasserstein-2 distance between the training tasks' behavior "
            "policies; floor = the same estimate between two draws of one policy (the value "
            f"must dominate it to mean anything). Gain = {ref}'s mean minus the best other's."
        )
        lines.append("")
        body = [
            [g["env"], g["protocol"], _f(g["diversity"], 4), _f(g["floor"], 4),
             _f(g["reference_value"], 2), f"{g['best_other']} ({_f(g['best_other_value'], 2)})",
             _f(g["gain"], 2)]
            for g in report.gain_rows
        ]  # fmt: skip
        lines += _md_table(["env", "protocol", "avg W2", "floor", ref, "best other", "gain"], body)
        lines += [f"- {proto}: {note}" for proto, (_, note) in report.pearson.items()] + [""]
        if any(p.name == "gain_vs_diversity.png" for p in report.figures):
            lines += ["![gain vs diversity](gain_vs_diversity.png)", ""]
    if report.diversity and unrecorded:
        lines += [how, ""]

    lines += _axis_gain_section(report)

    if report.cost_rows:
        lines += ["## Cost of a run (mean wall-clock seconds per run)", ""]
        lines.append(
            "As measured by the process that ran each run, on whatever machine ran the suite "
            "and with whatever else it was doing (spec.json names no hardware; see the suite's "
            "header or README for it). data = loading the datasets, setup = building the "
            "agent, train = gradient steps, eval = all evaluations, probe = the z-probe; wall = "
            "wall_s, everything but the probe (the only figure runs recorded before the phase "
            "split). Runs trained together as one seed group of K (`seed_group`, "
            "`--executor-opt seeds_per_step`) record the group's clock, shared by its K runs: "
            "K = the group size (of the attempt that finished the run), per run = total / K, each "
            "run's share."
        )
        lines.append("")
        phases = ("data", "setup", "train", "eval", "probe", "total")
        body = [
            [c["env"], c["method"], c["n_runs"], *(_f(c[f"{p}_s"], 1) for p in phases),
             _f(c["wall_s"], 1), f"{c['seed_group']:g}", _f(c["per_run_s"], 1)]
            for c in report.cost_rows
        ]  # fmt: skip
        lines += _md_table(["env", "method", "runs", *phases, "wall", "K", "per run"], body)

    lines += _missing_markdown(report.missing)

    lines += ["## Missing / failed runs", ""]
    if report.problems:
        body = [
            [p.run_id, p.method, p.env, p.seed, p.status, p.error[:300]] for p in report.problems
        ]
        lines += _md_table(["run_id", "method", "env", "seed", "status", "error"], body)
    elif report.n_expected:
        lines += ["None: every expected run finished.", ""]
    else:
        lines += ["No runs.", ""]
    if report.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in report.warnings] + [""]
    if report.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(lines)


def _axis_gain_section(report) -> list[str]:
    """The reference's gain over the axis baseline at each value of the data quality / the
    training-task count / the backbone, when the suite varies one (``tables.axis_gain_rows``)."""
    if not report.axis_gain_rows:
        return []
    ref, base = report.reference, report.axis_baseline
    lines = []
    for axis in dict.fromkeys(r["axis"] for r in report.axis_gain_rows):
        title = {**AXIS_TITLES, "train_tasks": "number of training tasks"}
        lines += [f"## {ref} gain over {base} vs {title.get(axis, axis)}", ""]
        lines.append(
            f"Gain = {ref}'s mean normalized score minus {base}'s (over seeds x tasks) at each"
            " value, with its 95% agent-bootstrap CI (each method's seeds resampled whole);"
            " methods named per value (focal-expert, focal-t5, focal-iql) count as their plain"
            " method; Welch p over per-seed means, q = Welch's p adjusted (Benjamini-Hochberg) over"
            " every row of this table, MDE = the smallest gain Welch's test detects with 80% power"
            " at the observed spread"
            f" (`gain_vs_axis.csv`, `gain_vs_{axis}.png`)."
        )
        lines.append("")
        body = [
            [str(r["value"]), r["env"], r["protocol"], f"{split_label(r['split'])} ({r['split']})",
             f"{r['n_method']} / {r['n_baseline']}", _f(r["mean_method"], 2),
             _f(r["mean_baseline"], 2),
             f"{_f(r['gain'], 2)} [{_f(r['gain_ci_low'], 2)}, {_f(r['gain_ci_high'], 2)}]",
             _fmt_p(r.get("welch_p")), _fmt_p(r.get("welch_q")), _f(r.get("mde_80"))]
            for r in report.axis_gain_rows
            if r["axis"] == axis
        ]  # fmt: skip
        lines += _md_table(
            [
                axis,
                "env",
                "protocol",
                "split",
                "seeds",
                ref,
                base,
                "gain [95% CI]",
                "Welch p",
                "q",
                "MDE (80%)",
            ],
            body,  # fmt: skip
        )
        if any(p.name == f"gain_vs_{axis}.png" for p in report.figures):
            lines += [f"![gain vs {axis}](gain_vs_{axis}.png)", ""]
        lines += _axis_trend_lines(report, axis)
    return lines


def _axis_trend_lines(report, axis: str) -> list[str]:
    """The gain's slope per doubling of a numeric axis (``tables.axis_trend_rows``)."""
    rows = [r for r in report.axis_trend_rows if r["axis"] == axis]
    if not rows:
        return []
    ref, base = report.reference, report.axis_baseline
    lines = [
        f"**Trend.** How {ref}'s gain over {base} changes per doubling of the {axis} value: the"
        " least-squares slope of the gains above on log2 of the value, with a 95% agent-bootstrap"
        " CI (each value's two methods' seeds resampled whole, on their own); Welch p = Welch's"
        " test of the slope (per-seed means, Welch-Satterthwaite degrees of freedom); q ="
        " Benjamini-Hochberg over these rows; MDE = the smallest slope that test detects with"
        " 80% power (`gain_trend.csv`).",
        "",
    ]
    body = [
        [r["env"], r["protocol"], f"{split_label(r['split'])} ({r['split']})", r["values"],
         str(r["min_seeds"]),
         f"{_f(r['slope_per_doubling'], 2)} [{_f(r['slope_ci_low'], 2)},"
         f" {_f(r['slope_ci_high'], 2)}]",
         _fmt_p(r["welch_p"]), _fmt_p(r["welch_q"]), _f(r["mde_80"])]
        for r in rows
    ]  # fmt: skip
    header = ["env", "protocol", "split", axis, "seeds (min)", "gain per doubling [95% CI]"]
    return lines + _md_table(header + ["Welch p", "q", "MDE (80%)"], body)
