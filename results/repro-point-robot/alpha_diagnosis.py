"""Why BRAC's alpha climbs in some runs: measures on trained agents (issue 26, item 2).

Usage (from the repository root; each RUN_DIR holds spec.json, checkpoint.pt and log.jsonl)::

    OMP_NUM_THREADS=1 python results/repro-point-robot/alpha_diagnosis.py RUN_DIR [RUN_DIR ...]

Rebuilds each run's agent from its checkpoint (``ertrl_bench.runner.load_trained``) and measures,
on the run's training tasks (each task's data: equal shares of transitions from C behavior SAC
checkpoints, the datasets' ``checkpoint`` column):

* ``ck acc``: how well z tells which behavior checkpoint collected a context. Per task, contexts
  (the run's context size) drawn from one checkpoint's transitions only -> z; a 5-fold
  cross-validated logistic regression from z to the checkpoint; mean accuracy over tasks
  (chance 1 / C). ``task acc``: the same from z of ordinary (mixed) contexts to the task.
* ``div mix``: BRAC's divergence estimate as training computes it (the dual critic c, fresh
  policy actions, ``kl_dual``): z from ordinary contexts of the task (every checkpoint mixed),
  data transitions of the whole task. It should match the training log's ``brac/divergence``
  (``div log``: its mean over the 1k steps before the checkpoint), which checks the rebuild.
  ``div same``: z from contexts of one checkpoint, data transitions of that same checkpoint.
  ``div by ck``: ``div mix`` split by the checkpoint of the data transition (first .. last).
* ``pi std``: the policy's pre-tanh std at data states (z from ordinary contexts); ``beh std``:
  each behavior checkpoint's pre-tanh std at the same states (the policies stored beside the
  data), mean over checkpoints. ``ck spread``: std of the C checkpoints' pre-tanh means at a state,
  in units of their own std (>1: the data's actions at a state are a spread-out mixture).
* ``std clamped``: the fraction of (data state, action dim) where the policy's raw log-std is at
  or above ``log_std_max`` (0): BRAC clamps it there, and the clamp passes no gradient, so no
  loss term can narrow the policy at those states.
* ``KL mix``: the *true* KL(pi || equal-weight mixture of the task's behavior checkpoints) at
  data states, Monte Carlo in pre-tanh space (tanh maps both sides alike, so the KL is the same);
  ``KL best ck``: min over checkpoints of the closed-form KL(pi || checkpoint) (Gaussians).
* ``pi z-sens``: std, over the task's ordinary contexts, of the policy's mean action (tanh) at
  the same state: how much the policy's action moves with z alone. ``|c| data``: the dual
  critic's mean |c| on data actions (its output penalty holds |c| near 1 or below).
* ``pen/rest grad``: on the policy's weights, |gradient of alpha x divergence| / |gradient of
  the rest of the policy loss (log pi - Q)|, one batch per task, mean over tasks.
* ``z within/between``: variance of z over contexts of one task / variance of the task means.

Prints one markdown table (one row per run). The numbers depend on ``--seed`` only through the
contexts and samples drawn.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ertrl_bench.backbones.brac import _flat, kl_dual
from ertrl_bench.batch import FIELDS, Transitions
from ertrl_bench.data.policies import load_behavior_policies
from ertrl_bench.errors import ErtrlError
from ertrl_bench.nn import tanh_gaussian_from_noise
from ertrl_bench.runner import TrainedRun, load_trained

LOG_2PI = math.log(2 * math.pi)


def _transitions(trained: TrainedRun, row: int, idx: np.ndarray) -> Transitions:
    """Rows ``idx [R, N]`` of task ``row``'s data as ``R`` batches of ``N`` transitions."""
    td = trained.task_data
    i = torch.as_tensor(idx)
    r = torch.full_like(i, row)
    return Transitions(*(td.data[f][r, i] for f in FIELDS), task_ids=torch.full((len(i),), row))


def _classify(z: np.ndarray, y: np.ndarray, seed: int) -> float:
    """5-fold cross-validated accuracy of a logistic regression from z to the labels y."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(model, z, y, cv=folds).mean())


def _gauss_logp(u, mean, log_std):
    return (-0.5 * ((u - mean) / log_std.exp()).pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def _log_window(run_dir: Path, step: int, key: str) -> float:
    """Mean of a training-log value over the 1k steps up to ``step`` (NaN without a log)."""
    path = run_dir / "log.jsonl"
    if not path.exists():
        return float("nan")
    vals = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if key in rec and step - 1000 < rec.get("step", -1) <= step:
            vals.append(float(rec[key]))
    return float(np.mean(vals)) if vals else float("nan")


def _penalty_share(bb, s, a, z) -> float:
    """|grad of alpha * divergence| / |grad of the rest of the policy loss (logp - Q)| on the
    policy's weights, at one batch: > 1 means the divergence term steers the actor. Adam
    normalises the step size, so once it dominates, a larger alpha no longer changes the step."""
    params = list(bb.policy.parameters())
    with torch.enable_grad():
        mean, log_std = bb._pi_params(torch.cat([s, z], -1))
        a_new, logp = tanh_gaussian_from_noise(mean, log_std, torch.randn_like(mean))
        q_new = bb._q2(torch.cat([s, a_new, z], -1)).min(0).values
        c_new = bb.c(torch.cat([s, a_new, z], -1)).squeeze(-1)
        c_data = bb.c(torch.cat([s, a, z], -1)).squeeze(-1).detach()
        pen = bb.alpha() * kl_dual(c_new, c_data).mean()
        g_pen = torch.autograd.grad(pen, params, retain_graph=True)
        g_rest = torch.autograd.grad((logp - q_new).mean(), params)
    norm = lambda g: torch.sqrt(sum(x.pow(2).sum() for x in g))  # noqa: E731
    return float(norm(g_pen) / norm(g_rest))


@torch.no_grad()
def diagnose(run_dir: Path, contexts: int, samples: int, seed: int) -> dict:
    trained = load_trained(run_dir)
    spec, agent = trained.spec, trained.agent
    bb = agent.backbone
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    ctx_size, rl_batch = spec.train.context_size, spec.train.rl_batch
    tasks = trained.family.tasks("train")
    ck_acc, z_mix_all, z_task_labels = [], [], []
    div_mix, div_same, by_ck = [], [], {}
    pi_std, beh_std, spread, kl_mix, kl_best = [], [], [], [], []
    z_sens, c_abs, grad_ratio, clamped = [], [], [], []
    for ti, task in enumerate(tasks):
        row, arrays = trained.rows[task.key], trained.data.arrays[task.key]
        ck = np.asarray(arrays["checkpoint"]).reshape(-1)
        steps = sorted(int(s) for s in np.unique(ck))
        pools = [np.flatnonzero(ck == s) for s in steps]
        every = np.arange(len(ck))

        # 1. z of single-checkpoint contexts -> which checkpoint
        zs, ys = [], []
        for k, pool in enumerate(pools):
            _, z = agent.infer(_transitions(trained, row, rng.choice(pool, (contexts, ctx_size))))
            zs.append(z.numpy())
            ys += [k] * contexts
        ck_acc.append(_classify(np.concatenate(zs), np.array(ys), seed))

        # 2. BRAC's divergence estimate: mixed contexts vs the data's own checkpoint's contexts
        def estimate(z: torch.Tensor, batch: Transitions):
            s, a = _flat(batch.obs), _flat(batch.actions)
            zr = z[:, None].expand(-1, batch.obs.shape[1], -1).reshape(len(s), -1)
            mean, log_std = bb._pi_params(torch.cat([s, zr], -1))
            a_pi, _ = tanh_gaussian_from_noise(mean, log_std, torch.randn_like(mean))
            c_pi = bb.c(torch.cat([s, a_pi, zr], -1)).squeeze(-1)
            c_data = bb.c(torch.cat([s, a, zr], -1)).squeeze(-1)
            return kl_dual(c_pi, c_data), s, zr, mean, log_std

        _, z_mix = agent.infer(_transitions(trained, row, rng.choice(every, (contexts, ctx_size))))
        z_mix_all.append(z_mix.numpy())
        z_task_labels += [ti] * contexts
        rl_idx = rng.choice(every, (contexts, rl_batch))
        batch_all = _transitions(trained, row, rl_idx)
        div, s, zr, mean, log_std = estimate(z_mix, batch_all)
        div_mix.append(div.mean().item())
        rl_ck = ck[rl_idx.reshape(-1)]
        for k, st in enumerate(steps):
            by_ck.setdefault(k, []).append(div[torch.as_tensor(rl_ck == st)].mean().item())
        for pool in pools:
            _, z_k = agent.infer(_transitions(trained, row, rng.choice(pool, (contexts, ctx_size))))
            d_k, *_ = estimate(
                z_k, _transitions(trained, row, rng.choice(pool, (contexts, rl_batch)))
            )
            div_same.append(d_k.mean().item())

        # 3. the policy against the behavior checkpoints that made the data, at the same states
        pi_std.append(log_std.exp().mean().item())
        raw_log_std = bb.policy(torch.cat([s, zr], -1)).chunk(2, -1)[1]
        clamped.append((raw_log_std >= bb.o.log_std_max).float().mean().item())
        grad_ratio.append(_penalty_share(bb, s, _flat(batch_all.actions), zr))
        s_fix = s[:rl_batch]  # the same states under each of the task's contexts' z
        sz = torch.cat(
            [s_fix.expand(contexts, -1, -1), z_mix[:, None].expand(-1, rl_batch, -1)], -1
        )
        z_sens.append(torch.tanh(bb._pi_params(sz)[0]).std(0).mean().item())
        c_abs.append(bb.c(torch.cat([s, _flat(batch_all.actions), zr], -1)).abs().mean().item())
        beh = [
            load_behavior_policies(trained.data.path, [task], st).actor.mean_log_std(s[None])
            for st in steps
        ]
        b_mean = torch.stack([m[0] for m, _ in beh])  # [C, N, da]
        b_log_std = torch.stack([ls[0] for _, ls in beh])
        beh_std.append(b_log_std.exp().mean().item())
        spread.append((b_mean.std(0) / b_log_std.exp().mean(0)).mean().item())
        u = mean + log_std.exp() * torch.randn(samples, *mean.shape)  # [S, N, da] pre-tanh
        log_pi = _gauss_logp(u, mean, log_std)
        log_b = torch.stack([_gauss_logp(u, b_mean[k], b_log_std[k]) for k in range(len(steps))])
        log_mix = torch.logsumexp(log_b, 0) - math.log(len(steps))
        kl_mix.append((log_pi - log_mix).mean().item())
        var, b_var = (2 * log_std).exp(), (2 * b_log_std).exp()  # closed-form Gaussian KLs
        kl_k = 0.5 * ((var + (mean - b_mean).pow(2)) / b_var - 1 + b_var.log() - var.log()).sum(-1)
        kl_best.append(kl_k.mean(1).min().item())

    z_all = np.concatenate(z_mix_all)
    labels = np.array(z_task_labels)
    means = np.stack([z_all[labels == t].mean(0) for t in range(len(tasks))])
    within = np.mean([z_all[labels == t].var(0).sum() for t in range(len(tasks))])
    return {
        "run": run_dir.name,
        "step": trained.step,
        "alpha": float(bb.alpha()),
        "div log": _log_window(run_dir, trained.step, "brac/divergence"),
        "div mix": float(np.mean(div_mix)),
        "div same": float(np.mean(div_same)),
        "div by ck": " / ".join(f"{np.mean(v):.3f}" for _, v in sorted(by_ck.items())),
        "ck acc": float(np.mean(ck_acc)),
        "chance": 1.0 / len(by_ck),
        "task acc": _classify(z_all, labels, seed),
        "z within/between": float(within / means.var(0).sum()),
        "pen/rest grad": float(np.mean(grad_ratio)),
        "pi z-sens": float(np.mean(z_sens)),
        "|c| data": float(np.mean(c_abs)),
        "pi std": float(np.mean(pi_std)),
        "std clamped": float(np.mean(clamped)),
        "beh std": float(np.mean(beh_std)),
        "ck spread": float(np.mean(spread)),
        "KL mix": float(np.mean(kl_mix)),
        "KL best ck": float(np.mean(kl_best)),
    }


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders (spec.json + checkpoint.pt)")
    p.add_argument("--contexts", type=int, default=30, help="contexts per task and checkpoint")
    p.add_argument("--samples", type=int, default=64, help="Monte Carlo samples for KL mix")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rows = []
    for run in args.runs:
        try:
            rows.append(diagnose(run, args.contexts, args.samples, args.seed))
        except ErtrlError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"done: {run}", file=sys.stderr, flush=True)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(_cell(r[k]) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
