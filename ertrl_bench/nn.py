"""Small network building blocks shared by every component.

``EnsembleLinear`` carries a leading ensemble axis (weights ``[E, in, out]``), so E independent
networks (one SAC agent per task) train as one batched matmul instead of a Python loop over tasks,
as CORL's SAC-N/EDAC do for critic ensembles.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
from torch import nn

INITS = ("rlkit", "torch")  # TrainConfig.init: how every built-in network starts
HIDDEN_BIAS = 0.1  # rlkit: every hidden layer's bias
OUTPUT_BOUND = 3e-3  # rlkit: output layer weights and biases uniform in +-this
POLICY_HEAD_BOUND = 1e-3  # rlkit's TanhGaussianPolicy: mean and log-std heads


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    act=nn.ReLU,
    *,
    init: str,
    out_bound: float = OUTPUT_BOUND,
) -> nn.Sequential:
    """An MLP initialised by ``init`` (``init_mlp_``); ``out_bound``: its output layer's range
    under ``rlkit`` (``POLICY_HEAD_BOUND`` for a policy's mean/log-std head)."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), act()]
        d = h
    layers.append(nn.Linear(d, out_dim))
    return init_mlp_(nn.Sequential(*layers), init, out_bound)


@torch.no_grad()
def init_mlp_(
    net: nn.Module, init: str, out_bound: float = OUTPUT_BOUND, generator=None
) -> nn.Module:
    """Initialise the linear layers of an MLP in place (the last one is its output layer).

    ``rlkit`` (the authors' networks, every one of them: rlkit's ``Mlp`` with ``fanin_init``):
    hidden weights uniform in +-1/sqrt(fan), where fan is the layer's *output* size (rlkit's
    ``fanin_init`` reads ``size[0]`` of a ``[out, in]`` weight), hidden biases 0.1, output
    weights and biases uniform in +-``out_bound`` (3e-3; a policy's heads 1e-3), so z, log-std
    and Q all start near 0. ``torch``: PyTorch's own default (the layers as constructed).
    ``EnsembleLinear`` members are initialised alike, each one like a single layer.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; available: {', '.join(INITS)}")
    layers = [m for m in net.modules() if isinstance(m, (nn.Linear, EnsembleLinear))]
    if init == "torch" or not layers:
        return net
    for layer in layers[:-1]:
        bound = 1.0 / math.sqrt(_out_features(layer))
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.fill_(HIDDEN_BIAS)
    last = layers[-1]
    last.weight.uniform_(-out_bound, out_bound, generator=generator)
    last.bias.uniform_(-out_bound, out_bound, generator=generator)
    return net


@torch.no_grad()
def orthogonal_init_(net: nn.Module, member: int | None = None, generator=None) -> nn.Module:
    """pytorch_sac's ``weight_init`` (the authors' behavior SAC): every linear layer's weights
    orthogonal (gain 1), biases 0. ``member``: only that member of each ``EnsembleLinear``
    (its ``[in, out]`` slice), drawn from ``generator``."""
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, generator=generator)
            m.bias.zero_()
        elif isinstance(m, EnsembleLinear):
            members = range(m.weight.shape[0]) if member is None else [member]
            for t in members:
                nn.init.orthogonal_(m.weight[t], generator=generator)
                m.bias[t].zero_()
    return net


def _out_features(layer: nn.Module) -> int:
    """A layer's output size: ``nn.Linear`` weight ``[out, in]``, ``EnsembleLinear`` ``[E, in, out]``."""
    return layer.weight.shape[0] if isinstance(layer, nn.Linear) else layer.weight.shape[-1]


class EnsembleLinear(nn.Module):
    """E independent linear layers applied to ``x [E, batch, in]`` in one ``baddbmm``."""

    def __init__(self, ensemble: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(ensemble, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default init, per member
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


def ensemble_mlp(
    ensemble: int,
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    *,
    init: str,
    out_bound: float = OUTPUT_BOUND,
) -> nn.Sequential:
    """``ensemble`` independent MLPs in one (``EnsembleLinear``), initialised as ``mlp``."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [EnsembleLinear(ensemble, d, h), nn.ReLU()]
        d = h
    layers.append(EnsembleLinear(ensemble, d, out_dim))
    return init_mlp_(nn.Sequential(*layers), init, out_bound)


LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def tanh_gaussian_sample(mean: torch.Tensor, log_std: torch.Tensor, deterministic: bool = False):
    """Reparameterised tanh-Gaussian action and its log-probability (summed over action dims)."""
    log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
    std = log_std.exp()
    if deterministic:
        pre = mean
    else:
        pre = mean + std * torch.randn_like(mean)
    action = torch.tanh(pre)
    normal_logp = (-0.5 * ((pre - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    # log|d tanh/dx| = 2 * (log 2 - x - softplus(-2x)), numerically stable
    correction = (2 * (math.log(2) - pre - nn.functional.softplus(-2 * pre))).sum(-1)
    return action, normal_logp - correction


def tanh_gaussian_from_noise(mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor):
    """Tanh-Gaussian action ``tanh(mean + std * noise)`` and its log-probability.

    ``log_std`` is used as given (the caller clamps it); the noise comes in as an argument so a
    compiled caller and an eager one can share the same random numbers.
    """
    pre = mean + log_std.exp() * noise
    normal_logp = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    correction = (2 * (math.log(2) - pre - nn.functional.softplus(-2 * pre))).sum(-1)
    return torch.tanh(pre), normal_logp - correction


_ALLOCATOR_TUNED = False


def tune_allocator(threshold: int = 32 << 20) -> bool:
    """Keep freed CPU tensors of up to ``threshold`` bytes in the process heap (glibc only).

    glibc hands allocations above its mmap threshold (128 KiB at first) straight to the kernel
    and gives them back on free, so every fresh ``[4096, 256]`` activation of a paper-size train
    step page-faults in zeroed memory again: measured 0.74 ms for a ReLU that takes 0.17 ms on
    reused memory. Raising the mmap and trim thresholds reuses the memory (the fix PyTorch's CPU
    tuning guide gets from jemalloc/tcmalloc). Numbers are unchanged. Returns whether it applied.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, threshold) == 1
        ok = ok and libc.mallopt(m_trim_threshold, 4 * threshold) == 1
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to tune
        return False
    _ALLOCATOR_TUNED = ok
    return ok


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.lerp_(s, tau)


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Torch uses ``threads`` threads inside the block (None: leaves the count as it is: torch's
    default is one per core or ``$OMP_NUM_THREADS``); the count before is restored after."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
