#!/usr/bin/env bash
# The GPU figures issue #27 still lacks, in one call of under 9 minutes on one H100 / H200:
#   1. tests/test_sac_update.py and tests/test_cuda_graph.py on CUDA (the graphed SAC update
#      and train step equal to eager; they skip without a GPU and had never run on one);
#   2. benchmarks/gpu_figures.py stages sac_graph (SAC update eager vs graphed, float32 / TF32
#      / bf16), kseed (K = 1, 5, 10, where benchmarks/test_bench_step.py has kseed_step_time),
#      graph_more (the graphed step of CSRO, UNICORN, Offline PEARL), eval (one paper-size
#      Cheetah-Vel evaluation on the GPU host);
#   3. the smoke suite end to end through the overlapped executor (`--executor-opt
#      overlap=true`), its wall-clock and every run's timing_s.
# Run from the repository root with the project's dependencies installed:
#   OUT=some/folder bash benchmarks/gpu_session.sh
# Raw outputs go under $OUT (default ./gpu-session-out): pytest-cuda.log, gpu_figures.json,
# gpu_figures.log, smoke.log, smoke-timing.json, nvidia-smi.txt. Each step has its own time
# limit, so one that hangs loses only itself. GPU_SESSION_DRY=1: a check of this script on
# the CPU at toy sizes (tests/test_gpu_session.py), not a measurement; SMOKE_SUITE picks the
# suite of step 3 (default: smoke).
set -u
OUT=${OUT:-gpu-session-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export ERTRL_BENCH_QUIET=1
export ERTRL_BENCH_DATA=${ERTRL_BENCH_DATA:-$OUT/data}
SUITE=${SMOKE_SUITE:-smoke}
T_TESTS=150 T_FIGURES=240 T_SMOKE=240
if [ -n "${GPU_SESSION_DRY:-}" ]; then
  export GPU_FIGURES_DRY=1
  T_TESTS=600 T_FIGURES=600 T_SMOKE=300
fi
start=$(date +%s)
stamp() { echo "[$(($(date +%s) - start)) s] $*" | tee -a "$OUT/session.log"; }

stamp "info"
(nvidia-smi || echo "no nvidia-smi") > "$OUT/nvidia-smi.txt" 2>&1
python -c "import torch; print(torch.__version__, torch.cuda.is_available())" >> "$OUT/nvidia-smi.txt" 2>&1

stamp "1. CUDA equality tests"
timeout "$T_TESTS" python -m pytest tests/test_sac_update.py tests/test_cuda_graph.py -q \
  > "$OUT/pytest-cuda.log" 2>&1
echo "rc=$?" >> "$OUT/pytest-cuda.log"

stamp "2. gpu_figures: sac_graph, kseed, graph_more, eval"
GPU_FIGURES_STAGES=sac_graph,kseed,graph_more,eval timeout "$T_FIGURES" \
  python benchmarks/gpu_figures.py "$OUT" "$T_FIGURES" > "$OUT/gpu_figures.log" 2>&1
echo "rc=$?" >> "$OUT/gpu_figures.log"

stamp "3. $SUITE through the overlapped executor"
t0=$(date +%s)
timeout "$T_SMOKE" python -m ertrl_bench.cli run "$SUITE" --results-dir "$OUT/smoke" \
  --executor-opt overlap=true --executor-opt cpu_workers=4 > "$OUT/smoke.log" 2>&1
rc=$?
python - "$OUT" "$(($(date +%s) - t0))" "$rc" <<'PY'
import json, sys
from pathlib import Path
out, wall, rc = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
runs = []
for m in sorted((out / "smoke").glob("*/*/metrics.json")):
    d = json.loads(m.read_text())
    runs.append({"run": d["run_id"], "timing_s": d["timing_s"], "wall_s": d["wall_s"]})
json.dump({"wall_s": wall, "rc": rc, "runs": runs}, open(out / "smoke-timing.json", "w"), indent=1)
PY
stamp "done"
