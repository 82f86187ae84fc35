"""Why BRAC's alpha climbs on Cheetah-Vel: continuations from a checkpoint, and alpha against
the evaluation scores (issue 26, item 2).

Usage (from the repository root; RUN_DIR holds spec.json, checkpoint.pt and log.jsonl, a copy of
a run folder of the converge-cheetah-vel study kept with ``--keep-checkpoints``)::

    OMP_NUM_THREADS=1 python results/converge-cheetah-vel/alpha_diagnosis.py \
        continue RUN_DIR VARIANT STEPS
    python results/converge-cheetah-vel/alpha_diagnosis.py scores RUN_DIR [RUN_DIR ...]

``continue`` rebuilds the run's agent (``ertrl_bench.runner.load_trained``), freezes the encoder
(z of fresh ordinary contexts of each meta-batch task, as training draws them) and continues
BRAC for STEPS steps on meta-batches of the run's training tasks:

* ``asis``: BRAC's own ``update``, unchanged (the reference continuation);
* ``batch256``: the same with an RL batch of 256 transitions a task (the paper's) instead of the
  run's, for the step's batch and each c-step's fresh batch;
* ``div``: the floor of the divergence game. The dual critic c is trained as BRAC trains it
  (3 c-steps on fresh batches, its optimizer), but the actor minimises alpha x the divergence
  estimate *only* (no Q, no entropy; alpha fixed at the checkpoint's, the scale its Adam state
  was built on): the lowest estimate a tanh-Gaussian actor reaches against a c that keeps
  maximising it. Above BRAC's target (0.05), alpha would climb whatever its value;
* ``div-one-ck``: ``div`` with every batch (the actor's and the c-steps') drawn from the
  transitions of each task's last behavior checkpoint only: the same game on data of one
  unimodal policy, to test whether the mixture of checkpoints is what holds the estimate up;
* ``div-frozen-c``: ``div`` with c frozen as the checkpoint has it (how far the actor can
  push a fixed c's estimate: not a KL, see the true KLs below);
* ``c-only``: the actor frozen, c trained as BRAC: how far the logged estimate is below what c
  reaches against the policy as it is (c lags the actor it chases);
* ``c-vs-own`` / ``c-vs-mix``: the estimator's calibration. c trained as BRAC, but the
  "policy" actions it tells from the data are fresh actions of the behavior checkpoint that
  collected each transition (``own``: the data's own generator, true KL 0), or of a checkpoint
  drawn uniformly (``mix``: the equal mixture of the task's checkpoints, which a policy that
  cannot tell the checkpoint from (s, z) would have to match); every training task a step;
* ``bc``: c trained as BRAC, the actor by maximum likelihood of the data actions (behavior
  cloning, the forward KL where BRAC penalises the reverse one; a fresh Adam, lr as BRAC's).

Every 250 steps it prints the raw alpha (it moves only in ``asis`` / ``batch256``), the mean
divergence estimate of the window, the window's Q loss (``asis`` / ``batch256``) and the seconds
a step took. Before the
first and after the last step it measures, on 256 data transitions of each training task with z
of a fresh context: ``est`` the divergence estimate (c, fresh policy actions), ``KL own ck`` the
true KL(pi || the behavior checkpoint that collected the transition) in closed form (Gaussians
in pre-tanh space, where tanh maps both alike), ``KL mix`` the true KL(pi || equal mixture of the
task's behavior checkpoints) by Monte Carlo, ``act gap own ck`` the mean |difference| of the
policy's and that checkpoint's deterministic actions (tanh of the means), ``pi std`` / ``beh
std`` the policy's and the behavior checkpoints' pre-tanh std, ``clamped`` the share of raw
log-stds at or above BRAC's clamp, ``Q data`` the Q nets' mean on data actions and ``TD rms``
their root-mean-square TD error (the square root of half the logged Q loss, on this batch),
``data return-to-go`` the data's own discounted return from each transition on the same scale
(reward x 5, discount 0.99, terminal at each trajectory's end) and ``steps to go`` the same
for a reward of 1 a step; ``Q pi`` the smaller Q net at fresh policy actions and ``logp pi``
their log-density. The V target is Q - log pi (temperature 1): a policy whose log pi is L a
step adds about -L x ``steps to go`` to Q beyond the rewards.

``scores`` reads the run folders' ``log.jsonl`` and prints, per evaluation, alpha, the window's
divergence (mean and s.d. of the one-step estimates logged every 50 steps), the Q loss, the
scale of log pi - Q at the policy's actions (the logged policy loss less alpha x divergence;
log pi is a few units, so about -Q) and the TD error relative to it (sqrt(Q loss / 2) / |Q|: the Q loss sums the two Q nets' mean squares), and
the normalized scores; then, per run, Spearman correlations of alpha,
Q loss and step with each score column over the evaluations from 10k steps on (correlational:
alpha and the step grow together, so the step's own correlation is printed beside it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from ertrl_bench.backbones.brac import _broadcast, _flat, kl_dual
from ertrl_bench.batch import FIELDS, Transitions
from ertrl_bench.data.policies import load_behavior_policies
from ertrl_bench.errors import ErtrlError
from ertrl_bench.nn import tanh_gaussian_from_noise
from ertrl_bench.runner import load_trained

VARIANTS = (
    "asis",
    "div",
    "div-one-ck",
    "div-frozen-c",
    "c-only",
    "c-vs-own",
    "c-vs-mix",
    "bc",
    "batch256",
)
LOG_2PI = math.log(2 * math.pi)
WINDOW = 250


def _gauss_logp(u, mean, log_std):
    return (-0.5 * ((u - mean) / log_std.exp()).pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def _tanh_gauss_logp(a, mean, log_std):
    """Log-likelihood of data actions ``a`` (in [-1, 1]) under the tanh-Gaussian policy."""
    a = a.clamp(-1 + 1e-6, 1 - 1e-6)
    pre = torch.atanh(a)
    return _gauss_logp(pre, mean, log_std) - torch.log1p(-a.pow(2)).sum(-1)


def _returns_to_go(td, rows: torch.Tensor, o, ones: bool = False) -> torch.Tensor:
    """The data's own discounted return-to-go of every transition of ``rows`` ``[T, N]``, on
    the Q nets' scale (reward x ``reward_scale``, ``discount``, the training data's terminals):
    the reward part of the value Q grows towards. ``ones``: a reward of 1 a step instead (the
    discounted number of steps to go: what a constant per-step term adds to Q, per unit)."""
    r = td.data["rewards"][rows, :, 0] * o.reward_scale
    r = torch.ones_like(r) if ones else r
    d = td.data["dones"][rows, :, 0]
    out, g = torch.zeros_like(r), torch.zeros(len(rows))
    for t in range(r.shape[1] - 1, -1, -1):  # a trajectory's transitions lie in order
        g = r[:, t] + o.discount * (1 - d[:, t]) * g
        out[:, t] = g
    return out


class Probe:
    """The true KLs of the policy to the behavior policies that made the data (module doc)."""

    def __init__(self, trained, per_task: int = 256, samples: int = 32, seed: int = 1):
        self.t, self.bb, self.agent = trained, trained.agent.backbone, trained.agent
        tasks = trained.family.tasks("train")
        self.rows = torch.tensor([trained.rows[t.key] for t in tasks])
        g = torch.Generator().manual_seed(seed)
        td = trained.task_data
        self.ctx = td.sample(self.rows, trained.spec.train.context_size, generator=g)
        self.samples = samples
        # the probe transitions, fixed: the same rows before and after a continuation
        idx = self._indices(td, per_task, seed)
        self.batch = self._rows_at(td, idx)
        ck_by_task = []
        for task in tasks:
            ck_by_task.append(np.asarray(trained.data.arrays[task.key]["checkpoint"]).reshape(-1))
        steps = sorted(int(s) for s in np.unique(np.concatenate(ck_by_task)))
        # [T, N]: the SAC step of the checkpoint that collected each probe transition
        own = np.stack([ck_by_task[i][idx[int(r)]] for i, r in enumerate(self.rows)])
        self.own = torch.as_tensor(np.searchsorted(steps, own))  # [T, N] checkpoint index
        at = torch.arange(len(self.rows))[:, None], torch.as_tensor(idx[self.rows.numpy()])
        self.rtg = _returns_to_go(td, self.rows, trained.agent.backbone.o)[at]
        self.steps_to_go = _returns_to_go(td, self.rows, trained.agent.backbone.o, True)[at]
        self.ck = [torch.as_tensor(np.searchsorted(steps, c)) for c in ck_by_task]
        self.actors = [load_behavior_policies(trained.data.path, tasks, st).actor for st in steps]
        with torch.no_grad():
            beh = [actor.mean_log_std(self.batch.obs) for actor in self.actors]  # obs [T, N, ds]
        self.b_mean = torch.stack([m for m, _ in beh])  # [C, T, N, da]
        self.b_log_std = torch.stack([ls for _, ls in beh])

    @staticmethod
    def _indices(td, n, seed):
        g = np.random.default_rng(seed)
        counts = td.counts.numpy() if hasattr(td.counts, "numpy") else np.asarray(td.counts)
        return np.stack([g.integers(0, int(c), n) for c in counts])

    def _rows_at(self, td, idx):
        r = self.rows[:, None]
        i = torch.as_tensor(idx[self.rows.numpy()])
        return Transitions(*(td.data[f][r, i] for f in FIELDS), task_ids=self.rows)

    @torch.no_grad()
    def measure(self) -> dict:
        bb = self.bb
        _, z = self.agent.infer(self.ctx)
        b = self.batch.obs.shape[1]
        s, a, zr = _flat(self.batch.obs), _flat(self.batch.actions), _broadcast(z, b)
        mean, raw_log_std = bb.policy(torch.cat([s, zr], -1)).chunk(2, -1)
        log_std = raw_log_std.clamp(bb.o.log_std_min, bb.o.log_std_max)
        a_pi, logp = tanh_gaussian_from_noise(mean, log_std, torch.randn_like(mean))
        c_pi = bb.c(torch.cat([s, a_pi, zr], -1)).squeeze(-1)
        c_data = bb.c(torch.cat([s, a, zr], -1)).squeeze(-1)
        est = kl_dual(c_pi, c_data).mean()
        q_pi = bb._q2(torch.cat([s, a_pi, zr], -1)).min(0).values
        q = bb._q2(torch.cat([s, a, zr], -1))  # [2, N]: the Q nets on data actions
        s2, r = _flat(self.batch.next_obs), self.batch.rewards.reshape(-1)
        d = self.batch.dones.reshape(-1)
        v_next = bb.v_target(torch.cat([s2, zr], -1)).squeeze(-1)
        target = bb.o.reward_scale * r + bb.o.discount * (1 - d) * v_next
        t = self.batch.obs.shape[0]
        mean, log_std = mean.reshape(t, b, -1), log_std.reshape(t, b, -1)
        own = self.own[None, :, :, None].expand(1, t, b, mean.shape[-1])
        o_mean = self.b_mean.gather(0, own)[0]
        o_log_std = self.b_log_std.gather(0, own)[0]
        var, o_var = (2 * log_std).exp(), (2 * o_log_std).exp()
        kl_own = 0.5 * ((var + (mean - o_mean).pow(2)) / o_var - 1 + o_var.log() - var.log())
        u = mean + log_std.exp() * torch.randn(self.samples, *mean.shape)  # [S, T, N, da]
        log_pi = _gauss_logp(u, mean, log_std)
        c = self.b_mean.shape[0]
        log_b = torch.stack([_gauss_logp(u, self.b_mean[k], self.b_log_std[k]) for k in range(c)])
        kl_mix = (log_pi - (torch.logsumexp(log_b, 0) - math.log(c))).mean()
        kl_own = kl_own.sum(-1)  # [T, N]
        gap = (torch.tanh(mean) - torch.tanh(o_mean)).abs().mean()
        return {
            "est": float(est),
            "Q data": float(q.mean()),
            "TD rms": float((q - target).pow(2).mean().sqrt()),
            "data return-to-go": float(self.rtg.mean()),
            "steps to go": float(self.steps_to_go.mean()),
            "Q pi": float(q_pi.mean()),
            "logp pi": float(logp.mean()),
            "KL own ck": float(kl_own.mean()),
            "KL own ck median": float(kl_own.median()),
            "act gap own ck": float(gap),
            "KL mix": float(kl_mix),
            "pi std": float(log_std.exp().mean()),
            "beh std": float(self.b_log_std.exp().mean()),
            "clamped": float((raw_log_std >= bb.o.log_std_max).float().mean()),
        }


@torch.no_grad()
def _behavior_batch(probe: Probe, td, n: int, which: str):
    """``n`` data transitions of every training task and, at their states, fresh actions of the
    behavior checkpoint that collected each one (``own``) or of a checkpoint drawn uniformly
    (``mix``: the equal mixture of the task's checkpoints): a "policy" that is the data's own
    generator, to calibrate the dual critic's estimate."""
    counts = td.counts[probe.rows]
    idx = (torch.rand(len(probe.rows), n) * counts[:, None]).long()
    batch = Transitions(
        *(td.data[f][probe.rows[:, None], idx] for f in FIELDS), task_ids=probe.rows
    )
    if which == "own":
        k = torch.stack([probe.ck[i][idx[i]] for i in range(len(probe.rows))])  # [T, n]
    else:
        k = torch.randint(0, len(probe.actors), idx.shape)
    outs = [actor.mean_log_std(batch.obs) for actor in probe.actors]
    mean = torch.stack([m for m, _ in outs])  # [C, T, n, da]
    log_std = torch.stack([ls for _, ls in outs])
    kk = k[None, :, :, None].expand(1, *mean.shape[1:])
    a_beh, _ = tanh_gaussian_from_noise(
        mean.gather(0, kk)[0], log_std.gather(0, kk)[0], torch.randn(mean.shape[1:])
    )
    return batch, a_beh


def _one_checkpoint_batch(probe: Probe, td, rows: torch.Tensor, n: int) -> Transitions:
    """``n`` transitions of each task in ``rows``, all collected by the task's last behavior
    checkpoint (data of one unimodal policy instead of the mixture of checkpoints)."""
    pos = {int(r): i for i, r in enumerate(probe.rows)}
    last = len(probe.actors) - 1
    idx = []
    for r in rows.tolist():
        pool = torch.nonzero(probe.ck[pos[r]] == last).squeeze(-1)
        idx.append(pool[torch.randint(0, len(pool), (n,))])
    i = torch.stack(idx)
    return Transitions(*(td.data[f][rows[:, None], i] for f in FIELDS), task_ids=rows)


def _c_vs_behavior_step(bb, agent, probe, td, cfg, which: str) -> float:
    """BRAC's c-steps with the behavior "policy"; returns the estimate on one more fresh batch."""
    with torch.no_grad():
        _, z = agent.infer(td.sample(probe.rows, cfg.context_size))
    for i in range(bb.o.c_steps + 1):
        batch, a_beh = _behavior_batch(probe, td, cfg.rl_batch, which)
        s, a, zr = _flat(batch.obs), _flat(batch.actions), _broadcast(z, cfg.rl_batch)
        a_beh = _flat(a_beh)
        if i == bb.o.c_steps:  # the estimate as the actor step computes it
            with torch.no_grad():
                c_pi = bb.c(torch.cat([s, a_beh, zr], -1)).squeeze(-1)
                c_data = bb.c(torch.cat([s, a, zr], -1)).squeeze(-1)
                return float(kl_dual(c_pi, c_data).mean())
        u = torch.rand(a.shape[0], 1)
        c_loss = bb._c_loss(s, zr, a_beh, a, u)
        bb.opt_c.zero_grad(set_to_none=True)
        c_loss.backward(inputs=list(bb.c.parameters()))
        bb.opt_c.step()


def _actor_only_step(bb, opt, s, a, zr, variant: str) -> torch.Tensor:
    """One actor step on the divergence estimate alone, or on the data actions' likelihood."""
    mean, log_std = bb._pi_params(torch.cat([s, zr], -1))
    a_new, _ = tanh_gaussian_from_noise(mean, log_std, torch.randn_like(mean))
    c_new = bb.c(torch.cat([s, a_new, zr], -1)).squeeze(-1)
    with torch.no_grad():
        c_data = bb.c(torch.cat([s, a, zr], -1)).squeeze(-1)
    div = kl_dual(c_new, c_data)
    if variant == "bc":
        loss = -_tanh_gauss_logp(a, mean, log_std).mean()
    else:  # alpha x divergence, alpha as the checkpoint has it: the scale Adam's state knows
        loss = bb.alpha() * div.mean()
    opt.zero_grad(set_to_none=True)
    loss.backward(inputs=list(bb.policy.parameters()))
    opt.step()
    return div.detach().mean()


def continue_run(run: Path, variant: str, steps: int) -> None:
    trained = load_trained(run)
    agent, td, cfg = trained.agent, trained.task_data, trained.spec.train
    bb = agent.backbone
    torch.manual_seed(0)
    rl_batch = 256 if variant == "batch256" else cfg.rl_batch
    probe = Probe(trained)
    # BC's loss has another scale than alpha x divergence: a fresh Adam (the paper's lr) for it
    opt = torch.optim.Adam(bb.policy.parameters(), lr=bb.o.lr) if variant == "bc" else bb.opt_policy
    print(f"{run.name} step {trained.step} {variant} rl_batch {rl_batch}", flush=True)
    print("before", json.dumps({k: round(v, 4) for k, v in probe.measure().items()}), flush=True)
    train_rows = probe.rows
    divs, qls, t0 = [], [], time.perf_counter()
    for step in range(1, steps + 1):
        rows = train_rows[torch.randperm(len(train_rows))[: cfg.meta_batch]]
        with torch.no_grad():
            _, z = agent.infer(td.sample(rows, cfg.context_size))
        if variant == "div-one-ck":  # every batch from the last behavior checkpoint's data

            def sample_rl(rows=rows):
                return _one_checkpoint_batch(probe, td, rows, rl_batch)
        else:

            def sample_rl(rows=rows):
                return td.sample(rows, rl_batch)

        batch = sample_rl()
        if variant in ("c-vs-own", "c-vs-mix"):
            divs.append(_c_vs_behavior_step(bb, agent, probe, td, cfg, variant[5:]))
        elif variant in ("asis", "batch256"):
            logs = bb.update(batch, z, z, sample_rl)
            divs.append(float(logs["brac/divergence"]))
            qls.append(float(logs["brac/q_loss"]))
        else:
            if variant != "div-frozen-c":
                bb._update_c(batch, z, sample_rl)
            s, a, zr = _flat(batch.obs), _flat(batch.actions), _broadcast(z, rl_batch)
            if variant == "c-only":  # the estimate of this batch, the actor left as it is
                with torch.no_grad():
                    mean, log_std = bb._pi_params(torch.cat([s, zr], -1))
                    a_pi, _ = tanh_gaussian_from_noise(mean, log_std, torch.randn_like(mean))
                    c_pi = bb.c(torch.cat([s, a_pi, zr], -1)).squeeze(-1)
                    c_data = bb.c(torch.cat([s, a, zr], -1)).squeeze(-1)
                    divs.append(float(kl_dual(c_pi, c_data).mean()))
            else:
                divs.append(float(_actor_only_step(bb, opt, s, a, zr, variant)))
        if step % WINDOW == 0:
            q = f" q_loss {np.mean(qls[-WINDOW:]):.1f}" if qls else ""
            print(
                f"{variant} step {trained.step + step} alpha {float(bb.raw_alpha):.1f}"
                f" divergence(last {WINDOW}) {np.mean(divs[-WINDOW:]):.4f}{q}"
                f" s/step {(time.perf_counter() - t0) / step:.3f}",
                flush=True,
            )
    print("after", json.dumps({k: round(v, 4) for k, v in probe.measure().items()}), flush=True)


SCORE_COLS = [(sp, pr) for sp in ("train", "moderate") for pr in ("offline", "online", "non_prior")]


def _evaluations(run: Path) -> list[dict]:
    """Per evaluation: step, alpha, mean divergence and Q loss of the 1k steps before, scores."""
    try:
        recs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    except (OSError, ValueError) as exc:
        raise ErtrlError(f"{run / 'log.jsonl'}: not a readable training log ({exc})") from None
    out = []
    for rec in recs:
        if "eval" not in rec:
            continue
        step = rec["step"]
        window = [r for r in recs if "brac/alpha" in r and step - 1000 < r["step"] <= step]
        row = {"step": step}
        row["alpha"] = window[-1]["brac/alpha"]
        for key in ("divergence", "q_loss"):
            row[key] = float(np.mean([r[f"brac/{key}"] for r in window]))
        # the policy loss is E[log pi - min Q + alpha * div] (+ a 1e-3 regulariser): without
        # the alpha term, -Q's scale at the policy's actions (log pi is a few units)
        q_scale = [r["brac/policy_loss"] - r["brac/alpha"] * r["brac/divergence"] for r in window]
        row["-Q"] = float(np.mean(q_scale))
        row["TD rms / |Q|"] = math.sqrt(row["q_loss"] / 2) / abs(row["-Q"])
        # one step's estimate every 50 steps: their s.d. is the per-step noise of the estimate
        row["div sd"] = float(np.std([r["brac/divergence"] for r in window], ddof=1))
        for sp, pr in SCORE_COLS:
            row[f"{sp}/{pr}"] = rec["eval"][sp][pr]["normalized"]
        out.append(row)
    return out


def scores(runs: list[Path], from_step: int = 10000) -> None:
    cols = [f"{sp}/{pr}" for sp, pr in SCORE_COLS]
    for run in runs:
        rows = _evaluations(run)
        print(f"\n### {run.name}\n")
        head = "| step | alpha | divergence | div sd | Q loss | -Q | TD rms / abs Q | "
        print(head + " | ".join(cols) + " |")
        print("|---" * (7 + len(cols)) + "|")
        for r in rows:
            vals = [f"{r['step']}", f"{r['alpha']:.0f}", f"{r['divergence']:.3f}"]
            vals += [f"{r['div sd']:.3f}", f"{r['q_loss']:.0f}", f"{r['-Q']:.0f}"]
            vals += [f"{r['TD rms / |Q|']:.3f}"] + [f"{r[c]:.1f}" for c in cols]
            print("| " + " | ".join(vals) + " |")
        late = [r for r in rows if r["step"] >= from_step]
        if len(late) < 3:
            continue
        print(f"\nSpearman rho over the {len(late)} evaluations from {from_step} steps on:\n")
        print("| against | " + " | ".join(cols) + " |")
        print("|---" * (1 + len(cols)) + "|")
        for key in ("alpha", "q_loss", "step"):
            x = [r[key] for r in late]
            rhos = [spearmanr(x, [r[c] for r in late]).statistic for c in cols]
            print(f"| {key} | " + " | ".join(f"{v:+.2f}" for v in rhos) + " |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("continue", help="continue a run's BRAC with one thing changed")
    c.add_argument("run", type=Path)
    c.add_argument("variant", choices=VARIANTS)
    c.add_argument("steps", type=int)
    s = sub.add_parser("scores", help="alpha and Q loss against the evaluation scores")
    s.add_argument("runs", type=Path, nargs="+")
    s.add_argument("--from-step", type=int, default=10000)
    args = p.parse_args(argv)
    try:
        if args.cmd == "continue":
            continue_run(args.run, args.variant, args.steps)
        else:
            scores(args.runs, args.from_step)
    except ErtrlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
