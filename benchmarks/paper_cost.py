"""GPU-hours of suites/paper.yaml on one GPU, per family (data and runs) and in total, from
measured per-step figures. Every input is read from the file that measured it and printed with
its source; nothing here is a new measurement.

    python benchmarks/paper_cost.py                      # the shipped measurements
    python benchmarks/paper_cost.py --figures OUT/gpu_figures.json   # a newer GPU session's
                                                          # (benchmarks/gpu_session.sh) first

The model (docs/cost.md "The paper's grid on one GPU"):

- data, per family: the batched SAC's learning steps x (update + act + env step + replay write
  + per-task draws), its random steps x (env step + replay write), then collection (checkpoints
  x trajectories x horizon batched steps x (env step + act)); all measured for 40 Cheetah-Vel
  tasks at paper sizes and scaled to the family's task count (its update is GEMM-bound at
  1024-wide layers; env stepping of heavier bodies is not measured on a GPU host);
- a run: train steps x the graphed step of its method + evaluations x the seconds of one
  evaluation of its splits x runs per task (measured on the 2-core CPU VM, 1 run per task) +
  the probe (0 when the overlapped executor runs it beside the next run's training). A method
  without a GPU figure takes FOCAL's graphed step times its CPU step's ratio to FOCAL's
  (benchmarks/measured/cpu-2core-2026-11-26/suite_cost.txt): an estimate, marked "est.".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
H200 = ROOT / "benchmarks/measured/h200-2026-11-26"
CPU = ROOT / "benchmarks/measured/cpu-2core-2026-11-26/suite_cost.txt"
PROBE_S = 7.5 * 60  # ertrl_bench/measures/probe.py's docstring: RBF-SVR on 24k rows, one core
PROBE_SOURCE = "ertrl_bench/measures/probe.py (module docstring: ~7.5 min per run)"


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _mean(xs) -> float:
    return sum(xs) / len(xs)


class Inputs:
    """The measured figures, each with the file it comes from (``sources``)."""

    def __init__(self, extra: list[Path]):
        self.sources: list[tuple[str, str, str]] = []  # (figure, value, file)
        self.eval_gpu: dict | None = None
        graph = {}  # method -> [ms]
        for name in ("call2-gpu_figures.json", "call4-gpu_figures.json"):
            data = json.loads((H200 / name).read_text())
            for key, vals in data["graph"].items():
                if key.endswith("/float32_ms"):
                    graph.setdefault(key.split("/")[0], []).extend(vals)
            device = data["info"]["device"]
        parts = json.loads((H200 / "call3-gpu_figures.json").read_text())["sac_parts"]
        self.device = device
        self.sac = {"float32": parts["float32"], "tf32": parts["tf32"]}
        self.sac_tasks = parts["tasks"]
        self.random_env_ms = parts["env step (random phase)"]
        src_graph = (
            _rel(H200 / "call2-gpu_figures.json") + ", " + _rel(H200 / "call4-gpu_figures.json")
        )
        src_parts = _rel(H200 / "call3-gpu_figures.json")
        for path in extra:  # a newer session's figures replace what they measure
            data = json.loads(Path(path).read_text())
            if "graph" in data:
                graph = {}
                for key, vals in data["graph"].items():
                    if key.endswith("/float32_ms"):
                        graph.setdefault(key.split("/")[0], []).extend(vals)
                src_graph = _rel(Path(path))
            if "sac_parts" in data:
                p = data["sac_parts"]
                self.sac = {k: p[k] for k in ("float32", "tf32") if k in p}
                self.sac_tasks, self.random_env_ms = p["tasks"], p["env step (random phase)"]
                src_parts = _rel(Path(path))
            more = {k: v for k, v in data.get("graph_more", {}).items() if k.endswith("_ms")}
            for key, vals in more.items():  # more methods, merged with the above
                graph[key.split("/")[0]] = list(vals)
            if more:
                src_graph += ", " + _rel(Path(path))
            if "sac_graph" in data:  # the update alone, eager / graphed, per precision
                base = self.sac.get("tf32") or self.sac["float32"]
                for variant, ms in data["sac_graph"]["update_ms"].items():
                    self.sac[variant] = {**base, "update": _mean(ms)}
                    self.sources.append(
                        (f"SAC update {variant}", f"{_mean(ms):.2f} ms", _rel(Path(path)))
                    )
            if "eval" in data and "evaluation_s" in data["eval"]:
                self.eval_gpu = data["eval"]  # Cheetah-Vel's, every split and run per task
                self.sources.append(
                    (
                        "one paper-size Cheetah-Vel evaluation on the GPU host",
                        f"{self.eval_gpu['evaluation_s']} s",
                        _rel(Path(path)),
                    )
                )
            self.device = data.get("info", {}).get("device", self.device)
        self.graph_ms = {m: _mean(v) for m, v in graph.items()}
        for m, v in sorted(self.graph_ms.items()):
            self.sources.append((f"graphed train step, {m} (float32)", f"{v:.2f} ms", src_graph))
        for prec, p in self.sac.items():
            for part, ms in p.items():
                self.sources.append(
                    (f"SAC {self.sac_tasks} tasks, {part} ({prec})", f"{ms:.2f} ms", src_parts)
                )
        self.sources.append(
            (
                f"SAC {self.sac_tasks} tasks, env step (random phase)",
                f"{self.random_env_ms} ms",
                src_parts,
            )
        )
        self.cpu_step, self.eval_s = _parse_suite_cost(CPU.read_text())
        self.sources.append(("CPU step per family x method (ratios)", "40 values", _rel(CPU)))
        self.sources.append(("one evaluation per family x split set", "16 values", _rel(CPU)))
        self.sources.append(("probe (RBF-SVR, 24k rows)", f"{PROBE_S:.0f} s", PROBE_SOURCE))

    def evaluation_s(self, family: str, runs_per_task: int) -> float:
        """Seconds of one evaluation of ``family``'s splits: the 2-core CPU's (1 run per task,
        times ``runs_per_task``), or, once measured, the GPU host's Cheetah-Vel figure scaled
        by the family's CPU ratio to Cheetah-Vel."""
        cpu = sum(self.eval_s[family].values())  # train+iid and moderate+extreme
        if self.eval_gpu is None:
            return cpu * runs_per_task
        ratio = cpu / sum(self.eval_s["cheetah-vel"].values())
        return (
            self.eval_gpu["evaluation_s"] * ratio * runs_per_task / self.eval_gpu["runs_per_task"]
        )

    def step_ms(self, family: str, method: str) -> tuple[float, bool]:
        """The graphed step of ``method`` (ms) and whether it is an estimate."""
        if method in self.graph_ms:
            return self.graph_ms[method], False
        ratio = self.cpu_step[family][method] / self.cpu_step[family]["focal"]
        return self.graph_ms["focal"] * ratio, True


def _parse_suite_cost(text: str) -> tuple[dict, dict]:
    step: dict = {}
    evals: dict = {}
    section = None
    for line in text.splitlines():
        if line.startswith("measured in"):
            section = "step"
        elif line.startswith("seconds per evaluation"):
            section = "eval"
        elif not line.startswith("  "):
            section = None if line.strip() else section
        elif section == "step":
            fam, method, s = line.split()
            step.setdefault(fam, {})[method] = float(s)
        elif section == "eval":
            fam, splits, s = line.split()
            evals.setdefault(fam, {})[splits] = float(s)
    return step, evals


def estimate(inputs: Inputs, overlap: bool = True, precision: str = "float32") -> list[dict]:
    """Per family: data hours and run hours (train, eval, probe), from suites/paper.yaml."""
    from ertrl_bench.data.tiers import resolve_tier
    from ertrl_bench.registry import create
    from ertrl_bench.suite_loader import load_suite

    _, specs = load_suite("paper")
    rows = {}
    sac = inputs.sac[precision]
    learn_ms = sum(sac[k] for k in ("update", "act", "env step", "replay add", "per-task draws"))
    random_ms = inputs.random_env_ms + sac["replay add"]
    for spec in specs:
        fam_name = spec.env.type
        if fam_name not in rows:
            fam = create("envs", spec.env)
            tier = resolve_tier(spec.tier, fam, spec.data)
            scale = len(fam.all_tasks(tier.task_seed)) / inputs.sac_tasks
            learning = tier.sac_steps - tier.random_steps
            sac_h = (learning * learn_ms + tier.random_steps * random_ms) * scale / 3.6e6
            collect_steps = len(tier.checkpoints) * tier.trajectories_per_checkpoint * fam.horizon
            collect_h = collect_steps * (sac["env step"] + sac["act"]) * scale / 3.6e6
            rows[fam_name] = {
                "family": fam_name,
                "tasks": round(scale * inputs.sac_tasks),
                "data_h": sac_h + collect_h,
                "train_h": 0.0,
                "eval_h": 0.0,
                "probe_h": 0.0,
                "runs": 0,
                "estimated": set(),
            }
        r = rows[fam_name]
        t = spec.train
        ms, est = inputs.step_ms(fam_name, spec.method.name)
        if est:
            r["estimated"].add(spec.method.name)
        r["train_h"] += t.iterations * t.steps_per_iteration * ms / 3.6e6
        evals = -(-t.iterations // t.eval_every)
        r["eval_h"] += evals * inputs.evaluation_s(fam_name, spec.eval.runs_per_task) / 3600
        if spec.eval.probe.enabled and not overlap:
            r["probe_h"] += PROBE_S / 3600
        r["runs"] += 1
    for r in rows.values():
        r["runs_h"] = r["train_h"] + r["eval_h"] + r["probe_h"]
        r["total_h"] = r["data_h"] + r["runs_h"]
    return list(rows.values())


def table(rows: list[dict]) -> str:
    out = [
        "| family | tasks | data | runs: train | runs: eval | runs: probe | runs | total |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        est = f" (est.: {', '.join(sorted(r['estimated']))})" if r["estimated"] else ""
        out.append(
            f"| {r['family']} | {r['tasks']} | {r['data_h']:.1f} | {r['train_h']:.1f}{est} |"
            f" {r['eval_h']:.1f} | {r['probe_h']:.1f} | {r['runs_h']:.1f} | {r['total_h']:.1f} |"
        )
    tot = {
        k: sum(r[k] for r in rows)
        for k in ("data_h", "train_h", "eval_h", "probe_h", "runs_h", "total_h")
    }
    out.append(
        f"| **all {sum(r['runs'] for r in rows)} runs** | | {tot['data_h']:.1f} | {tot['train_h']:.1f} |"
        f" {tot['eval_h']:.1f} | {tot['probe_h']:.1f} | {tot['runs_h']:.1f} | **{tot['total_h']:.1f}** |"
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--figures", type=Path, action="append", default=[], help="gpu_figures.json")
    ap.add_argument("--no-overlap", action="store_true", help="the probe in the training process")
    args = ap.parse_args(argv)
    inputs = Inputs(args.figures)
    print(f"GPU-hours of suites/paper.yaml on one GPU (figures from: {inputs.device})\n")
    print("Inputs:\n")
    for figure, value, source in inputs.sources:
        print(f"- {figure}: {value} ({source})")
    for precision in inputs.sac:
        print(
            f"\nSAC matmuls {precision}; probe {'in the training process' if args.no_overlap else 'overlapped (0 GPU time)'}:\n"
        )
        print(table(estimate(inputs, overlap=not args.no_overlap, precision=precision)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
