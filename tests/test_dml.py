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
