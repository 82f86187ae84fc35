"""The numbers in README.md and results/<study>/NOTES.md are the reports' own (glance.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ertrl_bench.analysis import glance

ROOT = Path(__file__).resolve().parents[1]


def test_readme_and_notes_tables_match_the_committed_report_csvs(capsys):
    docs = glance.documents(ROOT)
    assert ROOT / "README.md" in [p for p, _ in docs]
    assert {s.name for _, s in docs if s} >= {"repro-point-robot", "repro-cheetah-vel"}
    code = glance.main(["--check", str(ROOT)])
    assert code == 0, capsys.readouterr().out  # names the stale file and the command to fix it


def test_only_the_marked_block_is_rewritten_and_check_names_a_stale_file(tmp_path, capsys):
    study = tmp_path / "results" / "s"
    study.mkdir(parents=True)
    (study / "returns.csv").write_text(
        "env,method,scale,group,split,protocol,n_seeds,n_expected,n_tasks,n_evals,iqm,ci_low,"
        "ci_high,mean,mean_ci_low,mean_ci_high,std,std_ddof0\n"
        "point-robot,ertrl,ours,OOD,moderate,non_prior,5,5,10,3,1,0,2,12.34,10,14,2.5,2.2\n"
    )
    notes = study / "NOTES.md"
    notes.write_text(
        "Our reading.\n<!-- generated:study begin -->\nold | 99.9\n<!-- generated:study end -->\nMore.\n"
    )
    assert glance.main(["--check", str(tmp_path)]) == 1
    assert f"{notes}: out of date" in capsys.readouterr().out
    assert glance.main([str(tmp_path)]) == 0
    text = notes.read_text()
    assert text.startswith("Our reading.\n") and text.endswith("More.\n")
    assert "99.9" not in text and "12.3 ± 2.5" in text
    assert glance.main(["--check", str(tmp_path)]) == 0


def test_a_study_with_one_seed_a_method_says_too_few_seeds(tmp_path):
    """A study started across sessions is published with one seed: no p, no MDE, no verdict."""
    study = tmp_path / "results" / "s"
    study.mkdir(parents=True)
    (study / "returns.csv").write_text(
        "env,method,scale,group,split,protocol,n_seeds,n_expected,n_tasks,n_evals,iqm,ci_low,"
        "ci_high,mean,mean_ci_low,mean_ci_high,std,std_ddof0\n"
        "point-robot,ertrl,ours,OOD,moderate,non_prior,1,6,10,5,1,1,1,-30.9,-30.9,-30.9,,\n"
    )
    (study / "ttest.csv").write_text(
        "env,scale,protocol,group,split,method,baseline,n_method,n_baseline,mean_method,"
        "mean_baseline,diff,diff_ci_low,diff_ci_high,welch_t,welch_p,authors_t,authors_p,"
        "authors_df,poi,poi_ci_low,poi_ci_high,mde_80\n"
        "point-robot,ours,non_prior,OOD,moderate,ertrl,focal,1,1,-30.9,-31.9,1.0,1.0,1.0,,,,,,"
        "0.6,0.6,0.6,\n"
    )
    block = glance.glance_block(["results/s"], tmp_path)
    assert "too few seeds" in block and "nan" not in block
    assert "too few seeds to test" in glance.study_block(study)


def _tracked_files() -> set[str] | None:
    """The files git tracks in this checkout (None outside a git checkout: nothing to check)."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return set(out.splitlines())


def test_every_relative_link_in_the_docs_points_to_a_tracked_file():
    """A link to a file that .gitignore hides works on the author's machine and nowhere else
    (results/backbones was linked from README and never committed): every relative link in
    README.md, docs/ and results/*/NOTES.md names a file or folder git tracks."""
    import re

    tracked = _tracked_files()
    if tracked is None:
        pytest.skip("not a git checkout")
    folders = {str(p) for f in tracked for p in Path(f).parents}
    pages = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("results/*/NOTES.md")]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            path = target.split("#", 1)[0]
            if not path or re.match(r"[a-z]+:", path):
                continue  # an anchor on the page itself, or a URL
            rel = (page.parent / path).resolve()
            try:
                name = str(rel.relative_to(ROOT))
            except ValueError:
                continue  # outside the repository (e.g. ../shared): not ours to check
            if name not in tracked and name.rstrip("/") not in folders:
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "links to files git does not track:\n" + "\n".join(broken)


@pytest.mark.parametrize(
    "study",
    sorted(p.parent.name for p in ROOT.glob("results/*/curves.csv")),
)
def test_the_committed_learning_curves_regenerate_byte_for_byte(study, tmp_path):
    """curves.csv of a published study (none reports success) is what the report writes now:
    success-rate rows and their ``metric`` column only come with studies that have them."""
    from ertrl_bench.analysis.load import load_suite
    from ertrl_bench.analysis.report import write_csv
    from ertrl_bench.analysis.tables import curve_columns, curve_rows

    folder = ROOT / "results" / study
    done = [r for r in load_suite(folder).runs if r.done]
    rows = curve_rows(done) + curve_rows(done, metric="success")
    out = write_csv(tmp_path / "curves.csv", rows, curve_columns(rows))
    assert out.read_bytes() == (folder / "curves.csv").read_bytes()


def _table_widths(markdown: str) -> list[tuple[int, int, str]]:
    """(header cells, row cells, row) for every row of every pipe table that differs."""
    bad, header = [], None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]  # "\|" is a pipe in a cell
        if header is None:
            header = len(cells)
        elif len(cells) != header:
            bad.append((header, len(cells), line[:120]))
    return bad


@pytest.mark.parametrize("study", sorted(p.parent.name for p in ROOT.glob("results/*/report.md")))
def test_every_table_of_a_published_report_has_as_many_cells_a_row_as_its_header(study):
    """A column added to the rows but not the header (the axis table's q once) shifts every
    value under the wrong name."""
    assert _table_widths((ROOT / "results" / study / "report.md").read_text()) == []


STALE_MARK = "**Stale by run id.**"


def _made_by_todays_code(run_dir: Path) -> bool:
    """Today's code gives the run's own spec.json the run id its folder is named by."""
    from ertrl_bench.config import RunSpec

    try:
        spec = RunSpec.model_validate(json.loads((run_dir / "spec.json").read_text("utf-8")))
    except (OSError, ValueError):
        return False
    return spec.run_id() == run_dir.name


@pytest.mark.parametrize(
    "study",
    sorted(
        p.parent.name
        for p in ROOT.glob("results/*/NOTES.md")
        if (ROOT / "ertrl_bench" / "suites" / f"{p.parent.name}.yaml").exists()
    ),
)
def test_published_runs_are_the_runs_todays_code_would_make_or_say_they_are_not(study):
    """A run id hashes the resolved spec, so a change of defaults or of what the id covers gives
    new ids. A published study whose runs today's code would name differently (their own
    spec.json rehashed) or that its suite no longer makes describes older code: its NOTES must
    say so (the stale mark). Runs of an earlier budget may stay beside the suite's (a study that
    was extended), so the suite need only make some of them."""
    from ertrl_bench.suite_loader import load_suite

    folder = ROOT / "results" / study
    published = sorted(p.parent for p in folder.glob("*/metrics.json"))
    assert published, f"results/{study} has no finished run folder"
    expected = {spec.run_id() for spec in load_suite(study)[1]}
    renamed = [d.name for d in published if not _made_by_todays_code(d)]
    current = not renamed and any(d.name in expected for d in published)
    marked = STALE_MARK in (folder / "NOTES.md").read_text()
    assert current != marked, (
        f"results/{study}: marked stale but its runs are current (remove the mark)"
        if marked
        else f"results/{study}: runs of older code (rerun the suite, or mark its NOTES"
        f" '{STALE_MARK}'): {len(renamed)} of {len(published)} renamed today (e.g."
        f" {renamed[:3]}); none of the suite's ids today: {current is False and not renamed}"
    )
