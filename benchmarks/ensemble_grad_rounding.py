"""Where a seed group first differs from its runs alone: one layer, forward and backward.

A seed group (``ertrl_bench/ensemble.py``) computes every layer as one ``baddbmm`` over the
members where a run alone calls ``nn.Linear``. This compares the two on one layer at a few
shapes (batch, in, out; K = 3 identical members): the largest absolute difference of the output
and of the weight, bias and input gradients. Zero means bitwise equal. Run:
``OMP_NUM_THREADS=1 python benchmarks/ensemble_grad_rounding.py``; set ``MKL_ENABLE_INSTRUCTIONS``,
``ATEN_CPU_CAPABILITY`` or ``MKL_CBWR`` to see whether a kernel choice moves it.
"""

from __future__ import annotations

import torch

# the tiny test setting's shapes (tests/test_seed_batch.py) up to the small tier's
SHAPES = ((8, 10, 16), (24, 10, 64), (8, 64, 64), (64, 20, 64), (256, 64, 64), (1024, 64, 64))
K = 3


def compare(batch: int, n_in: int, n_out: int) -> dict[str, float]:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(n_out, n_in, generator=gen, requires_grad=True)
    b = torch.randn(n_out, generator=gen, requires_grad=True)
    x = torch.randn(batch, n_in, generator=gen, requires_grad=True)
    g = torch.randn(batch, n_out, generator=gen)
    alone = torch.nn.functional.linear(x, w, b)
    alone.backward(g)
    ws = w.detach().t().expand(K, n_in, n_out).contiguous().requires_grad_()
    bs = b.detach().expand(K, 1, n_out).contiguous().requires_grad_()
    xs = x.detach().expand(K, batch, n_in).contiguous().requires_grad_()
    group = torch.baddbmm(bs, xs, ws)
    group.backward(g.expand(K, batch, n_out))

    def diff(a, c):
        return (a - c).abs().max().item()

    return {
        "out": diff(group[0], alone),
        "d_weight": diff(ws.grad[0].t(), w.grad),
        "d_bias": diff(bs.grad[0, 0], b.grad),
        "d_input": diff(xs.grad[0], x.grad),
    }


if __name__ == "__main__":
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), K = {K}")
    for shape in SHAPES:
        row = compare(*shape)
        print("batch, in, out =", shape, "  ".join(f"{k} {v:.2e}" for k, v in row.items()))
