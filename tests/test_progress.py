"""Progress reporting when stderr is not a terminal (batch jobs, nohup): plain, rate-limited lines."""

from __future__ import annotations

import pytest

from ertrl_bench import progress


@pytest.fixture
def loud(monkeypatch):
    monkeypatch.delenv("ERTRL_BENCH_QUIET", raising=False)


def test_plain_lines_when_not_a_terminal(loud, monkeypatch, capsys):
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    with progress.bar("SAC behavior policies", 4) as b:
        for _ in range(4):
            b.advance()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("SAC behavior")]
    assert lines[0].startswith("SAC behavior policies: 1/4 (25%),")
    assert "left" in lines[0]
    assert lines[3].startswith("SAC behavior policies: 4/4 (100%),")
    assert "left" not in lines[3]


def test_plain_lines_are_rate_limited(loud, monkeypatch, capsys):
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 3600.0)
    with progress.bar("collect", 1000) as b:
        for _ in range(1000):
            b.advance()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("collect:")]
    assert lines == [lines[-1]] and lines[-1].startswith("collect: 1000/1000 (100%)")


def test_quiet_prints_nothing(monkeypatch, capsys):
    monkeypatch.setenv("ERTRL_BENCH_QUIET", "1")
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    with progress.bar("anything", 3) as b:
        b.advance(3)
    assert capsys.readouterr().err == ""


def test_eta_follows_the_recent_rate(loud, monkeypatch, capsys):
    """A fast warm-up must not make the estimate optimistic once the slow phase starts."""
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 10.0)
    monkeypatch.setattr(progress, "PACE_WINDOW_S", 10.0)
    with progress.bar("train", 100) as b:
        for step in range(20):
            clock[0] += 1.0 if step < 10 else 10.0  # 10 fast steps, then 10 x slower
            b.advance()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("train:")]
    assert lines[0].startswith("train: 10/100 (10%)") and lines[0].endswith("~0:01:30 left")
    # 80 steps left at the recent 10 s/step = 800 s (the all-time average would say 0:07:20)
    assert lines[-1].startswith("train: 20/100 (20%)") and lines[-1].endswith("~0:13:20 left")


def test_log_files_get_no_bar_drawing(loud, monkeypatch, capsys):
    """rich would print the finished bars once more on stop, cut to 80 columns: noise in a log."""
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    with progress.bar("outer", 2) as outer:
        with progress.bar("inner", 2) as inner:
            inner.advance(2)
        outer.advance(2)
    err = capsys.readouterr().err
    assert err.splitlines() == [
        ln for ln in err.splitlines() if ln.startswith(("outer: ", "inner: "))
    ], err


def test_resumed_work_is_not_counted_as_speed(loud, monkeypatch, capsys):
    """A run resumed at 40% must not estimate the rest as if 40% took the first 10 seconds."""
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 10.0)
    with progress.bar("train", 100, done=40) as b:
        for _ in range(10):
            clock[0] += 1.0  # 1 s a step in this process
            b.advance()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("train:")]
    # 50 steps left at 1 s/step (counting the resumed 40 as speed would say ~0:00:10)
    assert lines[0].startswith("train: 50/100 (50%)") and lines[0].endswith("~0:00:50 left")


def test_eta_is_steady_across_evaluation_pauses(loud, monkeypatch, capsys):
    """Training stops for an evaluation every 20 steps: the estimate takes the pauses in
    instead of swinging between the training pace and the pause (minutes vs hours)."""
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 10.0)
    left = []
    with progress.bar("train", 400) as b:
        for step in range(1, 401):
            clock[0] += 1.0
            if step % 20 == 0:
                clock[0] += 100.0  # the evaluation, counted in the step that triggers it
            b.advance()
            line = capsys.readouterr().err.strip()
            if clock[0] > progress.PACE_WINDOW_S and line.endswith(" left"):
                h, m, sec = line.rsplit("~", 1)[1].split()[0].split(":")
                left.append(((int(h) * 60 + int(m)) * 60 + int(sec), 6.0 * (400 - step)))
    # the true pace is 120 s per 20 steps; every estimate past the first window is within 30%
    assert left and all(0.7 * true <= est <= 1.3 * true for est, true in left), left
