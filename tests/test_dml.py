"""FOCAL's distance-metric loss: same task pulls together, different tasks push apart."""

import torch

from ertrl_bench.losses import dml_loss


def _grad_of_distance(task_ids):
    z = torch.tensor([[0.0, 0.0], [0.5, 0.0]], requires_grad=True)
    loss, _ = dml_loss(z, torch.tensor(task_ids))
    loss.backward()
    return z.grad


def test_same_task_gradient_pulls_together():
    g = _grad_of_distance([0, 0])
    # gradient descent moves z0 along -g: towards z1 (+x) and z1 towards z0 (-x)
    assert -g[0, 0] > 0 and -g[1, 0] < 0


def test_different_task_gradient_pushes_apart():
    g = _grad_of_distance([0, 1])
    assert -g[0, 0] < 0 and -g[1, 0] > 0


def test_loss_falls_as_different_tasks_separate():
    ids = torch.tensor([0, 1, 2])
    close = torch.tensor([[0.0], [0.1], [0.2]])
    far = close * 10
    assert dml_loss(far, ids)[0] < dml_loss(close, ids)[0]


def test_sync_free_cuda_terms_equal_the_cpu_gather():
    """The masked means used on CUDA (no host sync) give the CPU path's loss and gradient."""
    from ertrl_bench.losses import _gathered_terms, _masked_terms

    g = torch.Generator().manual_seed(0)
    for ids in ([0, 1, 2, 3], [0, 0, 1, 1, 2], [5, 5, 5]):  # all different, mixed, all same
        task_ids = torch.tensor(ids)
        m = len(ids)
        z = torch.randn(m, 4, generator=g, requires_grad=True)
        sq = (z[:, None, :] - z[None, :, :]).pow(2).mean(-1)
        upper = torch.triu(torch.ones(m, m, dtype=torch.bool), diagonal=1)
        same = (task_ids[:, None] == task_ids[None, :]) & upper
        diff = (task_ids[:, None] != task_ids[None, :]) & upper
        a = _gathered_terms(sq, same, diff, 1e-3)
        b = _masked_terms(sq, same, diff, 1e-3)
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y)
        (ga,) = torch.autograd.grad(sum(a), z, retain_graph=True)
        (gb,) = torch.autograd.grad(sum(b), z)
        torch.testing.assert_close(ga, gb)
