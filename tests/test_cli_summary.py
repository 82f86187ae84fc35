"""The table `ertrl-bench run` prints at the end: the same statistics as the report."""

from rich.console import Console

from ertrl_bench.cli import summary_table


def _metrics(seed: int, score: float) -> dict:
    return {
        "env": "point-robot",
        "method": "focal",
        "seed": seed,
        "final": {"train": {"offline": {"return": -1.0, "normalized": score}}},
    }


def test_the_run_summary_gives_the_sample_sd_over_seeds_and_says_so():
    table = summary_table([_metrics(0, 10.0), _metrics(1, 20.0), _metrics(2, 30.0)], "t")
    console = Console(width=120, record=True)
    console.print(table)
    text = console.export_text()
    assert "20.0 ± 10.0" in text  # ddof 1; numpy's default ddof 0 would print 8.2
    assert "s.d. (ddof 1)" in text
