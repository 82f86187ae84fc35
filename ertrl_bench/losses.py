"""FOCAL's distance-metric loss (DML) on the pooled task representations of a meta-batch.

docs/paper.md: over pairs (i, j) of the meta-batch, same task -> sqrt(mean squared distance + eps)
(pull together), different tasks -> 1 / (mean squared distance + 100 eps) (push apart); each
term averaged over its pairs, weight 10. The authors sample tasks without replacement, so in
practice only the push term is active; we keep both, so a batch with repeats also pulls.
"""

from __future__ import annotations

import torch


def dml_loss(
    z: torch.Tensor, task_ids: torch.Tensor, eps: float = 1e-3
) -> tuple[torch.Tensor, dict]:
    """Unweighted DML loss of ``z [M, L]`` given each row's task id ``[M]``."""
    m = z.shape[0]
    sq = (z[:, None, :] - z[None, :, :]).pow(2).mean(-1)  # [M, M] mean squared distance
    upper = torch.triu(torch.ones(m, m, dtype=torch.bool, device=z.device), diagonal=1)
    same = (task_ids[:, None] == task_ids[None, :]) & upper
    diff = (task_ids[:, None] != task_ids[None, :]) & upper
    # on CUDA, masked means: no host sync (``.any()`` and boolean indexing each wait for the
    # GPU); on CPU a sync costs nothing and the gather keeps the numbers of our published results
    terms = _masked_terms if z.is_cuda else _gathered_terms
    pos, neg = terms(sq, same, diff, eps)
    return pos + neg, {"dml/pos": pos.detach(), "dml/neg": neg.detach()}


def _gathered_terms(sq, same, diff, eps):
    zero = sq.new_zeros(())
    pos = torch.sqrt(sq[same] + eps).mean() if same.any() else zero
    neg = (1.0 / (sq[diff] + 100 * eps)).mean() if diff.any() else zero
    return pos, neg


def _masked_terms(sq, same, diff, eps):
    """The same means as :func:`_gathered_terms` (up to float summation order), sync-free."""
    pos = (torch.sqrt(sq + eps) * same).sum() / same.sum().clamp(min=1)
    neg = (1.0 / (sq + 100 * eps) * diff).sum() / diff.sum().clamp(min=1)
    return pos, neg
