"""The published ML1 numbers (reference/published_ml1.json) and ``ertrl-bench
metaworld-published``: the file is consistent with our families, methods and report columns,
and ours go beside exactly the comparable entries. No Meta-World env is built: well under a
second."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
from ertrl_bench_metaworld import plugin
from ertrl_bench_metaworld.published import (
    beside_ours,
    load_published,
    markdown,
    read_success_csv,
)

from ertrl_bench.analysis.tables import MAIN_COLUMNS, PROTOCOL_ORDER
from ertrl_bench.errors import ErtrlError

REFERENCE = Path(plugin.__file__).parent / "reference"


@pytest.fixture(scope="module")
def published():
    return load_published()


def test_every_entry_names_our_family_method_and_split(published):
    assert published.entries, "the reference file lists published numbers"
    assert {e.env for e in published.entries} <= set(plugin.FAMILIES)
    assert {e.method for e in published.entries} <= {"focal", "csro", "unicorn", "ertrl"}
    reach = plugin.FAMILIES["metaworld-reach"]
    for src in published.sources:
        if src.comparable:  # the split / protocol we compare on exist in our study
            assert src.our_split in {*reach.split_indices, "iid"}
            assert src.our_protocol in PROTOCOL_ORDER
    # the issue asks for FOCAL and CSRO: both have a comparable published number
    comparable = {e.method for e in published.entries if published.source(e.source).comparable}
    assert {"focal", "csro"} <= comparable
    assert (REFERENCE / "published_ml1.md").is_file()  # the prose beside the numbers


def _write_success_csv(path: Path, rows: list[dict]) -> Path:
    """A success.csv with the report's own columns (ertrl_bench.analysis.tables.MAIN_COLUMNS)."""
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, MAIN_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in MAIN_COLUMNS})
    return path


def _row(method, split, protocol, mean, std, seeds=5):
    return {
        "env": "metaworld-push", "method": method, "scale": "success", "split": split,
        "protocol": protocol, "n_seeds": seeds, "mean": mean, "std": std,
    }  # fmt: skip


def test_ours_go_beside_only_the_matching_cell(published, tmp_path):
    path = _write_success_csv(
        tmp_path / "success.csv",
        [
            _row("focal", "iid", "offline", 40.0, 10.0),
            _row("focal", "iid", "online", 99.0, 0.0),  # another protocol: not compared
            _row("focal", "train", "offline", 98.0, 0.0),  # another split: not compared
            _row("csro", "iid", "offline", 20.0, 4.0, seeds=4),
        ],
    )
    rows = {(r["source"], r["method"]): r for r in beside_ours(published, read_success_csv(path))}
    focal = rows["flora-aaai26", "focal"]
    assert (focal["published"], focal["ours_mean"], focal["ours_seeds"]) == (45.63, 40.0, 5)
    assert focal["ours_se"] == pytest.approx(10.0 / math.sqrt(5))
    assert rows["flora-aaai26", "csro"]["ours_se"] == pytest.approx(2.0)
    assert math.isnan(rows["flora-aaai26", "ertrl"]["ours_mean"])  # not in our csv: no number
    assert not any(src == "ctmrl-readme" for src, _ in rows)  # not a success rate: not compared
    text = markdown(published, read_success_csv(tmp_path))  # the folder works as well
    assert "| metaworld-push | focal | 45.63 (flora-aaai26)" in text
    assert "| focal, iid, offline | 40.0 | 4.5 | 10.0 | 5 |" in text
    assert "ctmrl-readme" in text.split("## Not compared")[1]


def test_a_method_on_another_backbone_stands_in_for_it(published):
    """The ML1 study runs every method on IQL (``focal-iql``): its cells go beside the published
    FOCAL, named; the method itself, where present, is preferred; ``focalx`` is not FOCAL."""
    ours = [
        _row("focal-iql", "iid", "offline", 30.0, 6.0),
        _row("focalx", "iid", "offline", 77.0, 0.0),
        _row("csro-iql", "iid", "offline", 10.0, 2.0),
        _row("csro", "iid", "offline", 20.0, 4.0),
    ]
    rows = {(r["source"], r["method"]): r for r in beside_ours(published, ours)}
    focal, csro = rows["flora-aaai26", "focal"], rows["flora-aaai26", "csro"]
    assert (focal["ours_method"], focal["ours_mean"]) == ("focal-iql", 30.0)
    assert (csro["ours_method"], csro["ours_mean"]) == ("csro", 20.0)
    assert "| focal-iql, iid, offline | 30.0 |" in markdown(published, ours)


def test_bad_input_is_one_error_naming_the_file(tmp_path):
    with pytest.raises(ErtrlError, match="success.csv: no such file.*ertrl-bench report"):
        read_success_csv(tmp_path)
    (tmp_path / "success.csv").write_text("env,method\nx,y\n")
    with pytest.raises(ErtrlError, match="not a report's success.csv"):
        read_success_csv(tmp_path)
    data = json.loads((REFERENCE / "published_ml1.json").read_text())
    data["entries"][0]["source"] = "nowhere"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ErtrlError, match="bad.json: not a valid published-numbers file"):
        load_published(bad)
    data = json.loads((REFERENCE / "published_ml1.json").read_text())
    del data["sources"][1]["why_not_comparable"]
    bad.write_text(json.dumps(data))
    with pytest.raises(ErtrlError, match="why_not_comparable"):
        load_published(bad)


def test_the_command_prints_the_comparison(register_test_plugin, monkeypatch, capsys, tmp_path):
    from ertrl_bench import cli

    monkeypatch.setattr(cli.app, "registered_commands", list(cli.app.registered_commands))
    register_test_plugin(plugin, "metaworld")
    _write_success_csv(tmp_path / "success.csv", [_row("csro", "iid", "offline", 12.5, 5.0)])
    out = tmp_path / "published.md"
    argv = ["ertrl-bench", "metaworld-published", str(tmp_path), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 0
    printed = capsys.readouterr().out
    assert "| metaworld-push | csro | 21.03 (flora-aaai26)" in printed and "| 12.5 |" in printed
    assert out.read_text() == printed
    monkeypatch.setattr(sys, "argv", ["ertrl-bench", "metaworld-published", str(tmp_path / "no")])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2  # a user error: one line, no traceback
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err


def test_the_committed_comparison_regenerates_from_the_studys_success_csv():
    """results/metaworld-ml1/published.md is what the command makes of the committed
    success.csv and reference file today: a stale comparison (edited JSON, rerun study)
    fails here instead of being read."""
    study = Path(__file__).resolve().parents[3] / "results" / "metaworld-ml1"
    if not (study / "published.md").is_file():
        pytest.skip("the ML1 study's published.md is not in this checkout")
    made = markdown(load_published(), read_success_csv(study))
    assert made == (study / "published.md").read_text(), (
        "results/metaworld-ml1/published.md is stale: rerun `ertrl-bench metaworld-published"
        " results/metaworld-ml1 --out results/metaworld-ml1/published.md`"
    )
