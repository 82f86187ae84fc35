"""The ``ertrl-bench`` command line: run | status | validate | plugins | datasets | report | analyze.

User errors (bad suite, unknown plugin, corrupted data...) print one clear message and exit
with code 2, never a traceback.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ertrl_bench.errors import ErtrlError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Help is rich markup (panels, styles): a literal "[" in help text is written "\\[".
    rich_markup_mode="rich",
    help="Benchmark offline meta-RL context regularizers (ER-TRL, CSRO, FOCAL, ...).",
)
datasets_app = typer.Typer(
    no_args_is_help=True,
    help="Build, list, show and verify behavior datasets; their diversity for older runs.",
)
analyze_app = typer.Typer(no_args_is_help=True, help="Stand-alone analyses.")
app.add_typer(datasets_app, name="datasets")
app.add_typer(analyze_app, name="analyze")
out = Console()
err = Console(stderr=True, soft_wrap=True)  # one error, one line (no wrap at 80 columns)

# The names suite_loader.builtin_suite_names() gives, globbed here so that --help imports no pydantic.
_BUILTIN_SUITES = sorted(p.stem for p in (Path(__file__).parent / "suites").glob("*.yaml"))
SUITE_HELP = (
    f"A suite YAML file, or a suite's name: built-in ({', '.join(_BUILTIN_SUITES)}) or a"
    " plugin's (`ertrl-bench plugins` lists them)."
)


@app.command()
def validate(
    suite: str = typer.Argument(..., help=SUITE_HELP),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Also build every run's components and take one train and one evaluation step on"
        " tiny random data (seconds; no dataset is built).",
    ),
):
    """Check a suite without running it; report every error at once."""
    from ertrl_bench.suite_loader import load_suite

    s, specs = load_suite(suite)
    out.print(
        f"[green]{escape(suite)}: valid[/] — suite {escape(repr(s.name))}, {len(specs)} run(s),"
        f" tier {s.tier}",
        soft_wrap=True,
        highlight=False,
    )
    if dry_run:
        from ertrl_bench.dryrun import dry_run as _dry_run

        results = _dry_run(specs)
        for r in results:
            mark = "[green]ok[/]" if r.ok else "[red]FAILED[/]"
            # a plugin's message verbatim ("[M, N]" is not markup), one line even when piped
            text = f"{r.run} ({r.seconds:.1f} s)" + ("" if r.ok else f": {r.message}")
            out.print(f"  {mark} {escape(text)}", soft_wrap=True, highlight=False)
        failed = [r for r in results if not r.ok]
        if failed:
            err.print(f"[red]{len(failed)} of {len(results)} dry run(s) failed[/]")
            raise typer.Exit(1)


@app.command()
def run(
    suite: str = typer.Argument(..., help=SUITE_HELP),
    results_dir: Path = typer.Option(Path("results"), help="Where results/<suite>/<run-id>/ go."),
    force: bool = typer.Option(
        False, "--force", help="Re-run finished runs too; unfinished ones from step 0."
    ),
    executor: str = typer.Option("local", help="local | ray (pip install 'ertrl-bench\\[ray]')."),
    executor_opt: list[str] = typer.Option(
        [],
        "--executor-opt",
        help="KEY=VALUE option of the executor, repeatable (local: jobs, threads, overlap,"
        " cpu_workers, seeds_per_step; ray: address, num_cpus, num_gpus, max_retries); see"
        " `ertrl-bench plugins` and docs/running.md.",
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        min=1,
        help="Local executor: runs at the same time, each in its own process with"
        " cores // jobs torch threads (default: one per core; never more than the runs; 1: in"
        " this process).",
    ),
    device: str | None = typer.Option(None, help="Override the suite's device (auto, cpu, cuda)."),
    checkpoint_every: float | None = typer.Option(
        None,
        "--checkpoint-every",
        metavar="MINUTES",
        help="Minutes between a run's mid-run checkpoints (default: the suite's"
        " checkpoint.every_minutes, 10); one is also written after every evaluation. A killed"
        " run resumes from its last one.",
    ),
    keep_checkpoints: bool = typer.Option(
        False, "--keep-checkpoints", help="Keep the last checkpoint of finished runs."
    ),
    reuse: list[Path] = typer.Option(
        [],
        "--reuse",
        metavar="RESULTS",
        help="Copy, instead of training, each unfinished run whose spec equals a finished run's"
        " in RESULTS (a suite's results folder, or a folder of them; repeatable) in all but the"
        " suite's name. metrics.json records reused_from (docs/running.md). RESULTS is also"
        " searched for shorter runs to extend.",
    ),
    only: list[str] = typer.Option(
        [],
        "--only",
        metavar="PATTERN",
        help="Run only the suite's runs whose id matches PATTERN (shell-style, e.g."
        " 'ertrl-*-s[0-2]-*'; repeatable: any of them); the others are left as they are. Splits a"
        " suite across machines or sessions (docs/running.md).",
    ),
    no_extend: bool = typer.Option(
        False,
        "--no-extend",
        help="Train every unfinished run from step 0 (or its own checkpoint), never from a"
        " finished shorter run's kept checkpoint.",
    ),
):
    """Validate, then run every run of a suite (finished runs are skipped: resumable).

    A run saves its training state every few minutes, after every evaluation and, on Ctrl-C or
    SIGTERM, at the training step in progress (checkpoint.pt in its folder): a stopped or killed
    run resumes from there with the same numbers. --force reruns from step 0.

    Two processes may share a results folder: each run is locked while it runs, and runs the
    other process holds are waited for, not redone.

    --reuse RESULTS copies the runs another suite already finished with the same spec (all but
    the suite's name) instead of training them again.

    A run whose spec is a finished run's with fewer train.iterations (in --results-dir or a
    --reuse folder) continues from that run's checkpoint, kept with --keep-checkpoints, with
    the numbers it would have from step 0: "extends RUN from step N" (--no-extend: it does not).
    """
    from ertrl_bench.config import device_problem
    from ertrl_bench.reuse import find_sources, reuse_finished
    from ertrl_bench.runner import data_first, run_suite, seed_groups
    from ertrl_bench.store import (
        CostMeter,
        check_writable_dir,
        record_invocation,
        write_suite_index,
    )
    from ertrl_bench.suite_loader import load_suite

    s, specs = load_suite(suite)
    chosen = _only_matching(specs, only)
    if reuse and force:
        raise ErtrlError("--reuse copies finished runs, --force reruns them: give one of the two")
    sources = find_sources(reuse)  # every --reuse folder checked before anything runs
    if device is not None:
        if problem := device_problem(device):
            raise ErtrlError(f"--device: {problem}")
        specs = [sp.model_copy(update={"device": device}) for sp in specs]
    if checkpoint_every is not None and not 0 < checkpoint_every < float("inf"):
        raise ErtrlError(f"--checkpoint-every {checkpoint_every}: minutes must be > 0 (e.g. 10)")
    if checkpoint_every is not None or keep_checkpoints:
        specs = [_checkpoint_policy(sp, checkpoint_every, keep_checkpoints) for sp in specs]
    if jobs is not None:
        if executor != "local":
            raise ErtrlError(f"--jobs is for the local executor; {executor!r} takes --executor-opt")
        executor_opt = [*executor_opt, f"jobs={jobs}"]
    ex = _from_cli_pairs("executors", executor, executor_opt, "--executor-opt", "num_cpus=2")
    check_writable_dir(results_dir)
    write_suite_index(results_dir, s.name, specs)  # the whole suite, whatever --only chose
    n_suite, specs = len(specs), [sp for sp in specs if sp.run_id() in chosen]
    plan = ""
    if hasattr(ex, "plan"):
        k = getattr(ex, "seeds_per_step", 1)  # a job is then a group of seeds
        n_jobs, threads = ex.plan(len(seed_groups(specs, k)) if k > 1 else len(specs))
        plan = f", {n_jobs} at a time x {threads} torch thread(s)" if n_jobs > 1 else ""
        if getattr(getattr(ex, "options", None), "overlap", False):
            plan = f", training one at a time, probes in {ex.options.cpu_workers} worker(s)"
        plan += f", seeds trained together in groups of up to {k}" if k > 1 else ""
    of = f" of {n_suite} (--only)" if only else ""
    err.print(
        f"suite {s.name!r}: {len(specs)} run(s){of} -> {results_dir / s.name}{plan}",
        markup=False,
    )
    if data_first(ex):
        err.print("building the runs' datasets first (each once), then dispatching the runs")

    def show(o) -> None:
        style = {"done": "green", "skipped": "cyan", "failed": "red", "reused": "cyan"}.get(
            o.status, "yellow"
        )
        err.print(f"[{style}]{o.status:>7}[/] {escape(f'{o.run_id} {o.message}')}", highlight=False)

    import os
    import platform

    meter = CostMeter()
    reused = reuse_finished(specs, results_dir, sources, on_outcome=show) if sources else []
    if reuse:
        folders = ", ".join(map(str, reuse))
        err.print(f"{len(reused)} of {len(specs)} run(s) reused from {folders}", markup=False)
    copied = {o.run_id for o in reused}
    rest = [sp for sp in specs if sp.run_id() not in copied]
    outcomes = reused + run_suite(
        rest, results_dir, ex, force=force, on_outcome=show, extend=not no_extend, extend_from=reuse
    )
    counts = {
        k: sum(o.status == k for o in outcomes) for k in ("done", "reused", "skipped", "failed")
    }
    record_invocation(
        results_dir, s.name,
        {**meter.read(), "runs": counts, "executor": executor, "options": list(executor_opt),
         "cpus": os.cpu_count(), "machine": platform.machine(), **({"only": only} if only else {})},
    )  # fmt: skip
    out.print(
        summary_table([o.metrics for o in outcomes if o.metrics], f"{s.name}: normalized return")
    )
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        err.print(
            f"[red]{len(failed)} run(s) failed[/]; see failed.json in their folders."
            " Finished runs are kept; re-run to retry the failed ones."
        )
        raise typer.Exit(1)


@app.command()
def status(
    suite: str = typer.Argument(..., help=SUITE_HELP),
    results_dir: Path = typer.Option(
        Path("results"), help="The --results-dir the suite runs with (results/<suite>/...)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead."),
):
    """Where a suite's runs stand: one row per run, then the counts and the time spent.

    Per run: done, reused (copied by --reuse), running (its lock is held by a live process),
    stopped at step S of N (unfinished, not running: a rerun resumes it from its checkpoint's
    step S; Ctrl-C and SIGTERM stop runs so; a run that will extend a shorter finished run
    shows that run's last step until it trains, and says so), failed (the error's first line;
    a rerun retries it) or not started; the step reached (a stopped run's checkpoint's, else the last one its
    log.jsonl records), how long ago that log changed, and, for an unfinished run with a
    checkpoint, the time it has left at its pace so far ("left (est.)", JSON left_s: the
    checkpoint's wall clock per step, evaluations and earlier sittings included). The summary
    adds the run-seconds the suite's finished runs took (timing_s total, a seed group's divided
    among its runs; reused runs cost nothing here) and an estimate for the runs not started:
    each at the mean run-seconds of the finished (done or reused) runs of its method and env,
    a seed group's share as above (JSON not_started_run_seconds; not_started_unestimated: those
    with no such run yet). Reads only: writes nothing, takes no lock,
    builds no data.
    """
    from ertrl_bench.status import age_text, as_records, suite_status, summary
    from ertrl_bench.suite_loader import load_suite

    s, specs = load_suite(suite)
    rows = suite_status(results_dir, specs)
    totals = summary(rows)
    if as_json:
        typer.echo(json.dumps({"suite": s.name, "runs": as_records(rows), "summary": totals}))
        return
    styles = {"done": "green", "reused": "cyan", "running": "yellow", "failed": "red"}
    table = Table(title=f"{s.name}: {results_dir / s.name}")
    # the run id, status and step are what one acts on: never cut them; the detail folds
    for col in ("run", "status", "step", "log changed", "left (est.)"):
        right = col != "run" and col != "status"
        table.add_column(col, justify="right" if right else "left", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for r in rows:
        what = (
            f"stopped at step {r.step or 0:,} of {r.total:,}" if r.status == "stopped" else r.status
        )
        step = "-" if r.step is None else f"{r.step:,} / {r.total:,}"
        table.add_row(
            r.run_id,
            f"[{styles.get(r.status, 'default')}]{escape(what)}[/]",
            step,
            age_text(r.log_age_s) + ("" if r.log_age_s is None else " ago"),
            age_text(r.left_s),
            escape(r.detail),
        )
    # piped or in a log, rich would squeeze the table into 80 columns: give it room instead
    (out if out.is_terminal else Console(width=200)).print(table)
    counts = ", ".join(f"{n} {k}" for k, n in totals["counts"].items())
    hours = totals["run_seconds"] / 3600
    ahead = totals["counts"].get("not started", 0)
    unknown = totals["not_started_unestimated"]
    if not ahead:
        ahead_text = ""
    elif unknown == ahead:
        ahead_text = f"; the {ahead} not started: no finished run of their method and env to go by"
    else:
        ahead_text = (
            f"; the {ahead} not started: ~{totals['not_started_run_seconds'] / 3600:.1f}"
            " run-hours at the pace of their method and env's finished runs"
            + (f" ({unknown} with none to go by, not counted)" if unknown else "")
        )
    out.print(
        f"{len(rows)} run(s): {counts}; {totals['run_seconds']:,.0f} run-seconds"
        f" ({hours:.1f} run-hours) spent by the finished runs{ahead_text}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _only_matching(specs, patterns: list[str]) -> set[str]:
    """The run ids ``--only`` keeps (all without a pattern); a pattern that matches no run of
    the suite is an error naming it (a typo would otherwise run nothing, silently)."""
    from fnmatch import fnmatchcase

    ids = [sp.run_id() for sp in specs]
    if not patterns:
        return set(ids)
    chosen: set[str] = set()
    for pattern in patterns:
        hits = {rid for rid in ids if fnmatchcase(rid, pattern)}
        if not hits:
            raise ErtrlError(
                f"--only {pattern!r} matches none of the suite's {len(ids)} run ids (e.g."
                f" {ids[0]!r}: METHOD-ENV-sSEED-HASH; `ertrl-bench status SUITE` lists them);"
                " shell-style patterns: * ? [..]"
            )
        chosen |= hits
    return chosen


def _checkpoint_policy(spec, every_minutes: float | None, keep: bool):
    """``spec`` with the CLI's checkpoint options (not part of the run id)."""
    update = {"every_minutes": every_minutes} if every_minutes is not None else {}
    if keep:
        update["keep"] = True
    return spec.model_copy(update={"checkpoint": spec.checkpoint.model_copy(update=update)})


def summary_table(metrics: list[dict], title: str) -> Table:
    """Mean normalized return over seeds per method x env x split x protocol, ± the sample s.d.
    (ddof 1) over seeds: the convention of the report and ``settle``, so the numbers agree."""
    import numpy as np

    from ertrl_bench.results_schema import is_number

    cells: dict[tuple, list[float]] = {}
    for m in metrics:  # validated by the runner (results_schema): final is {split: {protocol}}
        for split, by_p in m["final"].items():
            for protocol, v in by_p.items():
                cell = cells.setdefault((m["env"], m["method"], split, protocol), [])
                if is_number(v["normalized"]):  # NaN / null: no normalized score
                    cell.append(v["normalized"])
    table = Table(title=title, caption="mean ± s.d. (ddof 1) over seeds")
    for col in ("env", "method", "split", "context", "normalized return", "seeds"):
        table.add_column(col, justify="right" if col in ("normalized return", "seeds") else "left")
    for (env, method, split, protocol), vals in sorted(cells.items()):
        sd = f" ± {np.std(vals, ddof=1):.1f}" if len(vals) > 1 else ""
        mean = f"{np.mean(vals):.1f}{sd}" if vals else "n/a"
        table.add_row(env, method, split, protocol, mean, str(len(vals)))
    return table


@app.command()
def plugins(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    options: str | None = typer.Option(
        None, "--options", metavar="NAME", help="List one component's options and defaults."
    ),
):
    """List loaded plugins and what each registers, or (--options NAME) a component's options.

    On a terminal: a table. Piped or redirected: one plain line per component (kind, name,
    plugin, package), in a stable order.
    """
    from ertrl_bench import plugins as pl

    if options is not None:
        records = pl.describe_component(options)
        if as_json:
            typer.echo(json.dumps(records, indent=2))
        else:
            typer.echo("\n\n".join("\n".join(pl.component_text(r)) for r in records))
        return
    records = pl.describe_plugins()
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    if not sys.stdout.isatty():
        typer.echo("\n".join(pl.component_lines(records)))
        return
    table = Table(title="ertrl-bench plugins")
    table.add_column("plugin")
    table.add_column("package")
    for kind in (*pl.KINDS, "commands"):
        table.add_column(kind)
    for r in records:
        table.add_row(
            r["name"],
            f"{r['package']} {r['version'] or ''}".strip(),
            *(", ".join(r.get(k, [])) for k in (*pl.KINDS, "commands")),
        )
    out.print(table)


def _from_cli_pairs(kind: str, name: str, pairs, flag: str, example: str):
    """Component ``name`` of ``kind`` built from repeated ``FLAG KEY=VALUE`` options: the values
    are validated by its options model (errors name ``FLAG.KEY``), then it is built through the
    one construction path, ``registry.create``."""
    from pydantic import ValidationError

    from ertrl_bench.config import Component
    from ertrl_bench.options import format_validation_error
    from ertrl_bench.plugins import SINGULAR, get_registry
    from ertrl_bench.registry import create

    entry = get_registry().get(kind, name)
    what = f"{SINGULAR[kind]} {name!r}"
    raw: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ErtrlError(f"{flag} {pair!r}: expected KEY=VALUE, e.g. {example}")
        raw[key.strip()] = value.strip()
    if entry.options is None and raw:
        raise ErtrlError(f"{what} takes no options (got {', '.join(raw)})")
    if entry.options is not None:
        try:
            entry.options.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(format_validation_error(exc, flag, entry.options))
            raise ErtrlError(f"{what}: {problems}") from None
    return create(kind, Component(type=name, params=raw))


def _family(name: str, env_opt: list[str] | tuple = ()):
    """The registered env family ``name``, with ``--env-opt KEY=VALUE`` options."""
    return _from_cli_pairs("envs", name, env_opt, "--env-opt", "horizon=30")


def _split_tasks(fam, tier: str, splits: str) -> list[int]:
    """The task indices of ``--splits train,moderate`` (an unknown split is one error)."""
    from ertrl_bench.data.tiers import resolve_tier
    from ertrl_bench.envs.base import SPLITS

    names = [x.strip() for x in splits.split(",") if x.strip()]
    unknown = [x for x in names if x not in SPLITS]
    if unknown:
        raise ErtrlError(f"--splits: unknown split(s) {unknown}; available: {', '.join(SPLITS)}")
    seed = resolve_tier(tier, fam, None).task_seed
    return sorted({t.index for s in names for t in fam.tasks(s, seed)})


@datasets_app.command("build")
def datasets_build(
    family: str = typer.Argument(..., help="Env family, e.g. point-robot, cheetah-vel."),
    tier: str = typer.Option("smoke", help="smoke | small | large | paper"),
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild even if cached."),
    save_every: float = typer.Option(
        10.0,
        "--save-every",
        min=0,
        help="Minutes between saves of the SAC training state, so an interrupted build resumes"
        " where it stopped (0: never save).",
    ),
    max_memory: str = typer.Option(
        "auto",
        "--max-memory",
        help="Memory the build may use, e.g. 16GiB: the behavior policies train in task groups"
        " that fit (same data as one group). auto: 80% of the device's free memory.",
    ),
    env_opt: list[str] = typer.Option(
        [],
        "--env-opt",
        help="KEY=VALUE option of the env family, repeatable (e.g. horizon=30); see"
        " `ertrl-bench plugins`. Must match the suite's env params to share its data.",
    ),
    splits: str = typer.Option(
        "",
        "--splits",
        help="Build only these splits' tasks, comma-separated (e.g. train,moderate: what a run"
        " evaluating them reads), ahead of a suite or on a GPU; the same files as a full build's,"
        " which reuses them. Default: every split.",
    ),
    sac_cuda_graph: bool = typer.Option(
        False,
        "--sac-cuda-graph",
        help="On a GPU: replay each SAC update as one CUDA graph (docs/data.md, 'Building on"
        " a GPU'); ignored on CPU.",
    ),
    threads: int = typer.Option(
        1,
        "--threads",
        min=1,
        help="Torch threads for the build. On CPU a task's bytes depend on the count: the"
        " default, 1, gave the same bytes on every machine measured (AVX2 and AVX-512 kernels);"
        " more may build faster on many cores and gives other bytes (docs/data.md, 'Same key,"
        " same bits?').",
    ),
):
    """Train behavior policies for all tasks (or --splits) and collect their datasets.

    Resumable: finished tasks are kept, and an interrupted SAC run continues from its last save
    (Ctrl-C or SIGTERM save the step in progress first).
    """
    import time

    from ertrl_bench.data import get_datasets
    from ertrl_bench.data.memory import parse_bytes
    from ertrl_bench.problem import resolve_device

    budget = "auto" if max_memory.strip().lower() == "auto" else parse_bytes(max_memory)
    t0 = time.perf_counter()
    fam = _family(family, env_opt)
    fd = get_datasets(
        fam,
        tier,
        device=resolve_device("auto"),
        tasks=_split_tasks(fam, tier, splits) if splits.strip() else None,
        rebuild=rebuild,
        save_every_s=save_every * 60 if save_every > 0 else None,
        max_memory=budget,
        sac_cuda_graph=sac_cuda_graph,
        threads=threads,
    )
    manifest = json.loads((Path(fd.path) / "manifest.json").read_text())
    n = sum(len(a["rewards"]) for a in fd.arrays.values())
    out.print(
        f"{family} [{tier}]: {len(fd.tasks)} tasks, {n} transitions in {fd.path}"
        f" ({time.perf_counter() - t0:.1f} s)",
        markup=False,  # "[small]" is not a rich style
    )
    if "last_build" in manifest:
        b = manifest["last_build"]
        resumed = b.get("resumed_at_step")
        if b.get("behavior") == "scripted":
            trained = "scripted experts (no SAC)"
        else:
            trained = f"SAC {b['sac_env_steps_per_s']:.0f} env-steps/s" + (
                f" (since resuming at step {resumed})" if resumed else ""
            )
        out.print(
            f"last build: {b['tasks']} tasks in {b.get('groups', 1)} group(s), {trained},"
            f" collection {b['collect_env_steps_per_s']:.0f} env-steps/s"
        )
    degenerate = [t.key for t in fd.degenerate_tasks()]
    if degenerate:
        err.print(
            f"[yellow]{len(degenerate)} task(s) with R_min = R_max (normalised return undefined,"
            f" reported as NaN): {', '.join(degenerate)}"
        )


def _dataset_rows(verify: bool):
    from ertrl_bench.data.store import DatasetDir, data_root

    root = data_root()
    folders = {p.parent for p in root.glob("*/*/manifest.json")}
    folders |= {p.parent for p in root.glob("*/*/task-*.npz")}
    for folder in sorted(folders):
        d = DatasetDir(folder)
        m = d.manifest()
        tasks = m["tasks"]
        bad = [k for k in tasks if d.check_task(k) is not None] if verify else []
        size = sum(f.stat().st_size for f in d.path.iterdir() if f.is_file())
        yield d, m, tasks, bad, size


@datasets_app.command("list")
def datasets_list():
    """Show cached datasets: family, tier, tasks, transitions, size, checksum status."""
    from ertrl_bench.data.store import data_root

    table = Table(title=f"datasets in {data_root()}")
    for col in ("family", "tier", "folder", "tasks", "transitions", "size", "checksums"):
        table.add_column(col)
    incomplete = []
    for d, m, tasks, bad, size in _dataset_rows(verify=True):
        message = d.incomplete_message()
        if message:
            incomplete.append(f"{d.path}: {message}")
        status = (
            "[red]incomplete" if message else "[green]ok" if not bad else f"[red]{len(bad)} bad"
        )
        table.add_row(
            str(m.get("family", d.path.parent.name)),
            str(m.get("tier", d.path.name.rsplit("-", 1)[0])),
            d.path.name,
            str(len(tasks)),
            str(sum(t["transitions"] for t in tasks.values())),
            f"{size / 1e6:.1f} MB",
            status,
        )
    out.print(table)
    for line in incomplete:
        out.print(line, soft_wrap=True, markup=False, highlight=False)


@datasets_app.command("show")
def datasets_show(
    family: str = typer.Argument(..., help="Env family, e.g. point-robot, cheetah-vel."),
    tier: str = typer.Option("smoke", help="smoke | small | large | paper"),
    env_opt: list[str] = typer.Option(
        [], "--env-opt", help="KEY=VALUE option of the family, repeatable."
    ),
):
    """How expert a cached dataset is: per split, R_min / R_max over tasks (min / median / max)
    and the mean return over tasks at each behavior-policy checkpoint (and for a family that
    reports success, Meta-World, the episodes' success rate at each checkpoint); then per task
    its R_min / R_max and, for the ER-TRL authors' families, their R_min / R_max and our R_max on
    their scale (100 = as expert as their data). Shows the built tasks only (never builds)."""
    from ertrl_bench.analysis.paper_scale import authors_normalized, authors_range
    from ertrl_bench.data import dataset_dir, get_datasets
    from ertrl_bench.data.tiers import resolve_tier

    fam = _family(family, env_opt)
    values = resolve_tier(tier, fam, None)
    ddir = dataset_dir(fam, tier, values)
    if any(ddir.check_task(t.key) is not None for t in fam.tasks("train")):
        raise ErtrlError(
            f"{family} [{tier}] is not built (or incomplete) in {ddir.path}: run"
            f" `ertrl-bench datasets build {family} --tier {tier}` first"
        )
    # a build of some splits (`--splits`) is shown as it is: the other tasks are not built
    built = [t.index for t in fam.all_tasks(values.task_seed) if ddir.check_task(t.key) is None]
    data = get_datasets(fam, tier, tasks=built, record_diversity=False)
    summary = data.behavior_summary()
    print(f"{family} [{tier}] behavior data ({ddir.path})")
    div = data.diversity
    print(
        f"behavior diversity (sliced W2, {div['samples']} actions per state): {div['w2']:.4f},"
        f" same-policy floor {div['floor']:.4f}"
        if div
        else "behavior diversity: not recorded (`ertrl-bench datasets build` records it)"
    )
    print("split\ttasks\tR_min min/median/max\tR_max min/median/max\tmean return per checkpoint")
    for split, row in summary.items():
        spread = lambda v: "/".join(f"{x:.2f}" for x in v)  # noqa: E731
        curve = ", ".join(
            f"{c}: {r:.2f}" for c, r in zip(row["checkpoints"], row["mean_return"], strict=True)
        )
        if "success_rate" in row:
            rates = zip(row["checkpoints"], row["success_rate"], strict=True)
            curve += "; success rate per checkpoint " + ", ".join(f"{c}: {r:.2f}" for c, r in rates)
        print(f"{split}\t{row['tasks']}\t{spread(row['r_min'])}\t{spread(row['r_max'])}\t{curve}")
    print()
    header = "task\tsplit\tparam\tR_min\tR_max"
    authors = any(authors_range(fam.name, t.key) for t in data.tasks)
    if authors:
        header += "\tauthors' R_min\tauthors' R_max\tR_max on the authors' scale"
    print(header)
    for t in sorted(data.tasks, key=lambda t: t.index):
        line = (
            f"{t.key}\t{t.split}\t{','.join(f'{p:g}' for p in t.param)}"
            f"\t{data.r_min(t):.2f}\t{data.r_max(t):.2f}"
        )
        pair = authors_range(fam.name, t.key) if authors else None
        if pair is not None:
            ours = authors_normalized(fam.name, t.key, data.r_max(t))
            line += f"\t{pair[0]:.2f}\t{pair[1]:.2f}\t{'-' if ours is None else f'{ours:.1f}'}"
        elif authors:
            line += "\t-\t-\t-"  # e.g. our off-grid iid tasks: the authors have none
        print(line)


def _suite_datasets(results: Path) -> dict[str, tuple]:
    """``{env: (family, tier, data options, dataset folder or None)}`` of a suite's runs: from the
    first run of each env, its spec.json and the folder its metrics.json says it trained on.
    Runs whose files cannot be read are the report's to name."""
    from ertrl_bench.config import Component
    from ertrl_bench.registry import create
    from ertrl_bench.results_schema import MetricsFileError, read_metrics

    seen: dict[str, tuple] = {}
    for spec_path in sorted(results.glob("*/spec.json")):
        try:
            spec = json.loads(spec_path.read_text())
            env, tier = Component.model_validate(spec["env"]), spec["tier"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if env.type in seen:
            continue
        try:
            dataset = read_metrics(spec_path.parent / "metrics.json").dataset
        except MetricsFileError:
            dataset = None  # unfinished: the data it would train on
        seen[env.type] = (create("envs", env), tier, spec.get("data"), dataset)
    return seen


def _dataset_diversity(suite_dir: Path, env: str, family, tier, data, trained_on) -> dict | None:
    """The recorded diversity of the dataset ``env``'s runs trained on (measured and recorded
    first if the cache holds that dataset without it); None, with the reason printed, if the
    cache cannot give it."""
    from ertrl_bench.data import dataset_dir, get_datasets
    from ertrl_bench.data.quality import split_data_options
    from ertrl_bench.data.store import DatasetDir
    from ertrl_bench.data.tiers import resolve_tier

    overrides, _ = split_data_options(data)
    ddir = dataset_dir(family, tier, resolve_tier(tier, family, overrides))
    where = f"{suite_dir}: {env} [{tier}]"
    if trained_on and Path(trained_on) != ddir.path:
        recorded = DatasetDir(Path(trained_on)).manifest().get("diversity")
        if isinstance(recorded, dict):
            return recorded
        err.print(
            f"{where}: the runs trained on {trained_on}, not the dataset this version builds"
            f" ({ddir.path}: an older format or other settings), and its manifest records no"
            " diversity: it cannot be measured here",
            markup=False, highlight=False,
        )  # fmt: skip
        return None
    if any(ddir.check_task(t.key) is not None for t in family.tasks("train")):
        err.print(
            f"{where} is not in the dataset cache ({ddir.path}): build it (ertrl-bench datasets"
            f" build {env} --tier {tier}) or copy it there",
            markup=False, highlight=False,
        )  # fmt: skip
        return None
    train = [t.index for t in family.tasks("train")]  # what it reads: builds nothing here
    rec = get_datasets(family, tier, overrides, tasks=train).diversity
    if rec is None:
        err.print(f"{where}: no diversity (see above)", markup=False, highlight=False)
    return rec


@datasets_app.command("diversity")
def datasets_diversity(
    results: Path = typer.Argument(
        ..., help="A suite's results folder (results/smoke), or the results root: every suite."
    ),
):
    """Behavior diversity of a suite's datasets, for runs made before runs recorded it: read from
    the manifest of the dataset the runs trained on (measured there first if missing), merged
    into <suite>/diversity.json, where the report reads it. Uses the cache only: a dataset not
    cached is named, not built (exit 2 when any env has none)."""
    from ertrl_bench.analysis.load import suite_dirs
    from ertrl_bench.data.store import atomic_write_json

    lacking = 0
    for suite_dir in suite_dirs(results):
        found: dict[str, dict] = {}
        for env, (family, tier, data, trained_on) in _suite_datasets(suite_dir).items():
            rec = _dataset_diversity(suite_dir, env, family, tier, data, trained_on)
            if rec is None:
                lacking += 1
                continue
            found[env] = rec
            out.print(
                f"{suite_dir.name}: {env} [{tier}] W2 {rec['w2']:.4f}, floor {rec['floor']:.4f}",
                markup=False, highlight=False,
            )  # fmt: skip
        if found:
            path = suite_dir / "diversity.json"
            try:
                old = json.loads(path.read_text()) if path.is_file() else {}
            except (OSError, ValueError):
                old = {}  # unreadable: replaced
            try:
                atomic_write_json(path, {**(old if isinstance(old, dict) else {}), **found})
            except OSError as exc:
                raise ErtrlError(f"{suite_dir}: cannot write diversity.json ({exc})") from None
            out.print(f"wrote {path}", markup=False, soft_wrap=True)
    if lacking:
        raise typer.Exit(2)


@datasets_app.command("verify")
def datasets_verify():
    """Re-check every cached file (data and behavior policies) against its checksum and every
    manifest; exit 2 if anything is bad or incomplete."""
    n_bad = 0
    for d, _m, tasks, bad, _size in _dataset_rows(verify=True):
        message = d.incomplete_message()
        if message:
            err.print(f"{d.path}: {message}", soft_wrap=True, markup=False, highlight=False)
            n_bad += 1
        for k in bad:
            err.print(f"{d.path}/{k}: {d.check_task(k)}", soft_wrap=True, markup=False)
        n_bad += len(bad)
        if not bad and not message:
            out.print(f"[green]ok[/] {escape(str(d.path))} ({len(tasks)} tasks)", soft_wrap=True)
    if n_bad:
        err.print(
            f"{n_bad} problem(s): bad files are rebuilt on next use (or `datasets build --rebuild`)."
        )
        raise typer.Exit(2)


@app.command()
def report(
    results: Path = typer.Argument(
        ..., help="A suite's results folder (results/smoke), or the results root: every suite."
    ),
    diversity: bool = typer.Option(None, "--diversity/--no-diversity", hidden=True),
    gain_split: str = typer.Option(
        "moderate", help="Split of the reference's gain vs diversity (moderate = the paper's OOD)."
    ),
    reference: str = typer.Option(
        None,
        help="Method compared with every other one (tests, effect sizes, gain). Default: ertrl,"
        " or the study's only ER-TRL variant (e.g. ertrl-iql) when it has no ertrl run.",
        show_default=False,
    ),
    axis_baseline: str = typer.Option(
        "focal",
        help="What the reference's gain vs a suite axis (data quality, training-task count, backbone) is"
        " over; drawn only for a suite that varies one.",
    ),
):
    """Write report.md, CSV tables and PNG figures next to the results; print the main table.

    Reads the results only: behavior diversity and the probe as the runs recorded them (for
    older runs without diversity: ertrl-bench datasets diversity RESULTS)."""
    from ertrl_bench.analysis.load import unreadable_runs_hint
    from ertrl_bench.analysis.report import check_writable, suite_dirs, write_report

    if diversity is not None:
        raise ErtrlError(
            "--diversity / --no-diversity: gone; the report no longer measures diversity, it"
            " reads what the runs recorded (older runs: `ertrl-bench datasets diversity"
            f" {results}` writes it beside them). Drop the option"
        )
    if gain_split not in ("train", "iid", "moderate", "extreme"):
        raise ErtrlError(f"--gain-split {gain_split!r}: choose train, iid, moderate or extreme")
    dirs = suite_dirs(results)  # one suite, or each suite of a results root
    for suite_dir in dirs:
        check_writable(suite_dir)
        rep = write_report(
            suite_dir, gain_split=gain_split, reference=reference, axis_baseline=axis_baseline
        )
        if out.is_terminal:
            out.print(rep.rich_table())
        else:  # piped: plain lines, not a table cut to 80 columns
            print("\n".join(rep.plain_lines()))
        if rep.warnings:
            err.print(
                f"{len(rep.warnings)} warning(s): file(s) skipped, listed in {rep.path}"
                + unreadable_runs_hint(rep.problems),
                markup=False,
            )
        out.print(f"wrote {rep.path}", markup=False, soft_wrap=True)


@app.command()
def settle(
    results: Path = typer.Argument(..., help="A convergence study's results folder."),
    window: int = typer.Option(
        5,
        "--window",
        "-w",
        help="Evaluations a score averages: give the study's final_evals (5: the paper's).",
    ),
    budgets: str | None = typer.Option(
        None,
        help="Candidate budgets in gradient steps, comma-separated (5000,10k); each an"
        " evaluation step with a full window before the last evaluation. Default: the end of"
        " every WINDOW-th evaluation.",
    ),
    spans: str | None = typer.Option(
        None,
        help="Columns of the per-run window tables, comma-separated: STEP (that evaluation) or"
        " FROM-TO (the mean over the evaluations after FROM up to TO), e.g. 2k,5k-10k. Default:"
        " the spans between consecutive budgets.",
    ),
    effect: float = typer.Option(
        10.0,
        "--effect",
        help="The seed plan's target: the smallest difference (points of --metric) the study"
        " should detect; the plan gives the seeds a method for an MDE (Welch, 80% power,"
        " two-sided 0.05) of at most this.",
    ),
    at: str | None = typer.Option(
        None,
        "--at",
        help="The seed plan's budget: an evaluation step with a full window (e.g. 30k)."
        " Default: the cheapest budget that settles every cell, else the last evaluation.",
    ),
    reference: str = typer.Option(
        None,
        help="The seed plan compares this method with each other one (default as the report's:"
        " ertrl, or the study's only ER-TRL variant).",
        show_default=False,
    ),
    metric: str = typer.Option(
        "normalized",
        "--metric",
        help="The curves to settle: normalized (return) or success (the success rate in"
        " percent, for families that report one: Meta-World; writes settling_success.csv"
        " and diagnostics_success.png).",
    ),
):
    """Where a study's runs settle, BRAC diagnostics, and the seeds a study at that budget needs.

    Prints markdown: per method, each run's mean over spans of evaluations and the s.d. of its
    last WINDOW; per method x split x protocol and budget B, the seed-mean score with B steps
    (mean of the last WINDOW evaluations up to B), its seed s.d., the trend across that window
    and the drift from the last window (B settles the cell when both are within the seed s.d.);
    BRAC's alpha, Q loss and divergence per run at each budget; the seed plan: per split x
    protocol and per method against REFERENCE, the seed s.d.s at the plan's budget (--at),
    today's MDE and the seeds a method for an MDE of at most EFFECT points if the spreads stay
    as measured. Scores are the normalized return, or with --metric success the success rate
    in percent. Writes settling.csv and diagnostics.png into the folder (settling_success.csv
    and diagnostics_success.png for the success rate). Reads the results only."""
    from ertrl_bench.analysis.settling import (
        markdown,
        parse_spans,
        parse_step,
        parse_steps,
        write_files,
    )
    from ertrl_bench.analysis.settling import settle as compute

    result = compute(
        results,
        window=window,
        budgets=parse_steps(budgets) if budgets is not None else None,
        spans=parse_spans(spans) if spans is not None else None,
        effect=effect,
        reference=reference,
        at=parse_step(at, "--at") if at is not None else None,
        metric=metric,
    )
    written = write_files(result)
    print(markdown(result), end="")
    err.print("wrote " + ", ".join(str(p) for p in written), markup=False, soft_wrap=True)


@analyze_app.command("wasserstein")
def analyze_wasserstein(
    family: str = typer.Argument(..., help="Env family, e.g. point-robot, cheetah-vel."),
    tier: str = typer.Option("smoke", help="Dataset tier: smoke | small | large | paper."),
    states: int = typer.Option(
        32, min=1, help="Shared states S, drawn from the train tasks' data."
    ),
    samples: int = typer.Option(4096, min=1, help="Actions K sampled per state and policy."),
    checkpoint: str = typer.Option(
        "mixture", help="mixture (the checkpoints that made the data), a SAC step, first | last."
    ),
    method: str = typer.Option("sliced", help="sliced (default) | exact W2, see the docs."),
    seed: int = typer.Option(0, min=0, help="Seed of the state draw and the action samples."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON record instead."),
):
    """Behavior-policy diversity: mean pairwise W2 between the train tasks' policies (docs/paper.md).

    Builds the training tasks' datasets if missing, draws S states from the union of the training
    tasks' datasets, samples K actions per state from each training task's behavior policy (the
    checkpoint mixture that produced its data) and prints the average over task pairs of the
    state-averaged W2 distance, beside its same-policy floor (two draws of one policy).
    """
    from ertrl_bench.data import get_datasets
    from ertrl_bench.data.diversity import DEFAULTS, measure_diversity

    if checkpoint not in ("first", "last", "mixture") and not checkpoint.isdigit():
        raise ErtrlError(
            f"--checkpoint {checkpoint!r}: expected a SAC step (e.g. 3000), mixture, first or last"
        )
    if method not in ("sliced", "exact"):
        raise ErtrlError(f"--method {method!r}: choose sliced or exact")
    fam = _family(family)
    # only the training tasks' data is read, so only theirs is built (recording the default
    # measure as it does)
    data = get_datasets(fam, tier, tasks=[t.index for t in fam.tasks("train")])
    asked = {"states": states, "samples": samples, "checkpoint": checkpoint, "seed": seed}
    recorded = {**DEFAULTS, "samples": data.tier.diversity_samples}
    if data.diversity and method == "sliced" and all(recorded[k] == v for k, v in asked.items()):
        rec = data.diversity
    else:
        rec = measure_diversity(data, states, samples, checkpoint, seed, method)
    if as_json:
        out.print_json(json.dumps({"family": family, "tier": tier, **rec}))
    else:
        warn = "" if rec["floor_ratio"] < 0.1 else "  (floor >= 10% of the value: raise --samples)"
        out.print(
            f"{family} [{tier}] checkpoint {rec['checkpoint']}: average pairwise {method} W2 over"
            f" {rec['tasks']} train tasks ({rec['states']} states x {rec['samples']} actions) ="
            f" {rec['w2']:.4f}; same-policy floor {rec['floor']:.4f}"
            f" ({100 * rec['floor_ratio']:.1f}% of the value){warn}",
            markup=False,  # "[smoke]" is not a rich style
            highlight=False,
        )


def _click_exception_classes() -> tuple[type, type]:
    """(ClickException, Abort) of the click that typer really uses.

    typer >= 0.22 vendors its own copy of click (``typer._click``); older versions use the
    ``click`` package. Catching ``click.ClickException`` misses the vendored class (a usage
    error then ends in a traceback), so the classes are found from typer's own exception.
    """
    click_exc = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    module = sys.modules[click_exc.__module__]
    return click_exc, getattr(module, "Abort", typer.Abort)


INTERRUPTED = "interrupted; finished runs are kept, rerun to resume"


def _usage_error_line(exc) -> str:
    """A click usage error as one line: ``ertrl-bench run: Missing argument 'SUITE'. (...)``."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "ertrl-bench"
    hint = f" (see '{where} --help')" if ctx is not None else ""
    message = " ".join(exc.format_message().split())
    return f"{where}: {message}{hint}"


# ertrl-bench's own commands, before any plugin's are added
BUILTIN_COMMANDS = (tuple(app.registered_commands), tuple(app.registered_groups))


def add_plugin_commands() -> None:
    """The built-in commands plus every plugin's (``register_commands``), checked: a plugin
    command named like a built-in or another plugin's is a ``PluginError`` naming both."""
    from ertrl_bench.plugins import app_command_names, checked_plugin_commands

    commands, groups = BUILTIN_COMMANDS
    builtin = typer.Typer()
    builtin.registered_commands, builtin.registered_groups = list(commands), list(groups)
    apps = checked_plugin_commands(app_command_names(builtin))
    app.registered_commands = [*commands, *(c for a in apps for c in a.registered_commands)]
    app.registered_groups = [*groups, *(g for a in apps for g in a.registered_groups)]


def _sigterm_as_ctrl_c(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """The entry point: user errors are one message and exit 2, never a traceback. SIGTERM
    stops a command as Ctrl-C does (runs record "interrupted", a training step in progress is
    checkpointed first, exit 130) instead of killing it where it stands."""
    click_exc, click_abort = _click_exception_classes()
    term = signal.getsignal(signal.SIGTERM)
    if term is signal.SIG_DFL and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)
    try:
        add_plugin_commands()
        rc = app(args=argv, prog_name="ertrl-bench", standalone_mode=False)
        rc = rc if isinstance(rc, int) else 0
        if rc == 130:  # typer turns Ctrl-C into Exit(130) itself
            err.print(INTERRUPTED, highlight=False)
        sys.exit(rc)
    except ErtrlError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print(INTERRUPTED, highlight=False)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except click_exc as exc:
        err.print(f"error: {_usage_error_line(exc)}", markup=False, highlight=False)
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except (click_abort, typer.Abort) as exc:
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            err.print(INTERRUPTED, highlight=False)
            sys.exit(130)
        sys.exit(1)
    except OSError as exc:
        # the user's files or folders (permissions, a file where a folder must be...)
        if exc.filename is None:
            raise
        err.print(f"error: {exc.filename}: {exc.strerror or exc}", markup=False, highlight=False)
        sys.exit(2)
    finally:  # main() called in-process (tests) leaves the caller's handler as it was
        if signal.getsignal(signal.SIGTERM) is _sigterm_as_ctrl_c:
            signal.signal(signal.SIGTERM, term)


if __name__ == "__main__":
    main()
