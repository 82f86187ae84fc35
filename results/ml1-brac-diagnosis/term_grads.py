"""Which term of BRAC's policy loss pushes the actor's log-std into the clamp on ML1 reach?

Usage (from the repository root, with the Meta-World plugin installed)::

    OMP_NUM_THREADS=1 python results/ml1-brac-diagnosis/term_grads.py [VARIANT [STEPS [OUT]]]

Trains the diagnosis suite's run VARIANT (default ``focal-lsb``: the log-std head started at -1,
inside the clamp) for STEPS steps (default 300) in a scratch folder, with ``BRAC._actor_losses``
wrapped: at every call, the gradient of each term of the policy loss -- the entropy term
``logp``, ``-Q``, ``alpha * KL`` and the log-std part of the regulariser -- with respect to the
*clamped* log-std (the way each term would move it, also where the clamp blocks it), summed over
the batch and averaged over the action dimensions, is written as a JSON line to OUT (default
``term_grads_<VARIANT>.jsonl`` beside this file); then prints a table. The sign is that of
gradient descent: + widens the policy. Training is unchanged (the original function computes
the losses it uses).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch
import yaml

HERE = Path(__file__).resolve().parent
SUITE = HERE.parents[1] / "plugins" / "ertrl-bench-metaworld" / "suites" / "ml1-brac-diagnosis.yaml"
TERMS = ("entropy", "-Q", "alpha*KL", "reg")


def wrap_actor_losses(out) -> None:
    from ertrl_bench.backbones import brac
    from ertrl_bench.nn import tanh_gaussian_from_noise

    original = brac.BRAC._actor_losses
    calls = [0]

    def wrapped(self, s, a, zr, noise, alpha):
        calls[0] += 1
        with torch.enable_grad():
            mean, raw = self.policy(torch.cat([s, zr], -1)).detach().chunk(2, -1)
            log_std = raw.clamp(self.o.log_std_min, self.o.log_std_max).requires_grad_(True)
            a_new, logp = tanh_gaussian_from_noise(mean, log_std, noise)
            q_new = self._q2(torch.cat([s, a_new, zr], -1)).min(0).values
            c_new = self.c(torch.cat([s, a_new, zr], -1)).squeeze(-1)
            with torch.no_grad():
                c_data = self.c(torch.cat([s, a, zr], -1)).squeeze(-1)
            div = brac.kl_dual(c_new, c_data)
            terms = (
                logp.mean(),
                -q_new.mean(),
                (alpha * div).mean(),
                self.o.policy_reg * log_std.pow(2).mean(),
            )
            record = {
                "step": calls[0],
                "alpha": float(alpha),
                "raw_log_std": float(raw.mean()),
                "above_clamp": float((raw > self.o.log_std_max).float().mean()),
                "divergence": float(div.mean()),
            }
            for name, term in zip(TERMS, terms, strict=True):
                (grad,) = torch.autograd.grad(term, log_std, retain_graph=True)
                record[name] = float(-grad.sum(0).mean())
        out.write(json.dumps(record) + "\n")
        return original(self, s, a, zr, noise, alpha)

    brac.BRAC._actor_losses = wrapped


def scratch_suite(variant: str, steps: int, folder: Path) -> Path:
    suite = yaml.safe_load(SUITE.read_text())
    suite["name"] = "term-grads"
    suite["runs"] = [r for r in suite["runs"] if r["method"]["name"] == variant]
    if not suite["runs"]:
        raise SystemExit(f"{SUITE}: no run named {variant!r}")
    suite["train"].update(iterations=1, steps_per_iteration=steps, eval_every=1)
    suite["eval"]["runs_per_task"] = 1
    path = folder / "term-grads.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def table(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    print("| step | alpha | above clamp | divergence | " + " | ".join(TERMS) + " |")
    print("|---" * (4 + len(TERMS)) + "|")
    for r in rows[:1] + rows[9::20]:
        terms = " | ".join(f"{r[t]:+.3f}" for t in TERMS)
        print(
            f"| {r['step']} | {r['alpha']:.0f} | {r['above_clamp']:.2f} | {r['divergence']:.2f} "
            f"| {terms} |"
        )


def main(variant: str = "focal-lsb", steps: str = "300", out: str | None = None) -> None:
    from ertrl_bench.cli import main as cli

    target = Path(out) if out else HERE / f"term_grads_{variant}.jsonl"
    with tempfile.TemporaryDirectory() as tmp, target.open("w") as handle:
        wrap_actor_losses(handle)
        suite = scratch_suite(variant, int(steps), Path(tmp))
        sys.argv = ["ertrl-bench", "run", str(suite), "--jobs", "1", "--results-dir", tmp]
        try:
            cli()
        except SystemExit as stop:
            if stop.code:
                raise
    table(target)


if __name__ == "__main__":
    main(*sys.argv[1:])
