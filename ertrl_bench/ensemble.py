"""K runs that differ only in seed, trained as one computation: the building blocks.

A seed group (``ertrl_bench.seed_batch``) first builds each seed's agent exactly as a run
trained alone does (same seed, same initial weights), then *stacks* the K agents: every network
becomes one ensemble network over K members (``EnsembleMLP``: ``EnsembleLinear`` layers, one
batched matmul for all seeds), every Adam one Adam over the stacked parameters (Adam is
elementwise, so member k's slice moves exactly as its own optimizer would), and every random
draw is made K times, member k's from seed k's own generator (``MemberRNG``), in the order the
run trained alone makes it. Nothing mixes members: each member's losses are its own means, and
the step back-propagates their *sum*, whose gradient in member k's slice is member k's own.

The stacked state is written back into the K solo agents (``write_back``) before every
evaluation and checkpoint, so evaluation, the probe and the checkpoint files are those of
runs trained alone. On CPU the numbers equal the solo runs' up to float rounding: a batched
matmul sums in another order than ``nn.Linear``'s (about 1 ulp per layer), and training
amplifies that slowly (``tests/test_seed_batch.py`` states the tolerance).

A component is *ensemble-aware* when its class has ``ensemble(members, rng)`` returning the
stacked component (``components`` documents the contract); the built-ins are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ertrl_bench.batch import FIELDS, Transitions
from ertrl_bench.checkpoint import capture_rng, restore_rng
from ertrl_bench.nn import EnsembleLinear

# ---------------------------------------------------------------------------------------------
# Random numbers: each member draws from its own seed's stream


class MemberRNG:
    """Each member's RNG streams, as a run trained alone holds them in the global RNGs.

    ``generators[k]`` is member k's torch stream on the training device (a ``torch.Generator``
    in the state the global one of its solo run would be in): every draw of the train step
    takes it explicitly. ``member(k)`` puts member k's streams (torch, numpy, python) into the
    global RNGs for code that uses those (evaluation), and takes them back after.
    """

    def __init__(self, states: Sequence[dict], device: torch.device):
        self.device = torch.device(device)
        self._other = [dict(s) for s in states]  # numpy / python (and the other device's)
        self.generators = []
        for s in states:
            g = torch.Generator(device=self.device)
            g.set_state(self._device_state(s))
            self.generators.append(g)

    def _device_state(self, state: dict) -> torch.Tensor:
        if self.device.type == "cuda":
            return state["cuda"][self.device.index or 0]
        return state["torch"]

    def __len__(self) -> int:
        return len(self.generators)

    def draw(self, fn: Callable[[torch.Generator], torch.Tensor]) -> torch.Tensor:
        """``fn(generator)`` for each member, stacked: ``[K, ...]``."""
        return torch.stack([fn(g) for g in self.generators])

    def state(self, k: int) -> dict:
        """Member k's streams in ``checkpoint.capture_rng``'s form."""
        s = dict(self._other[k])
        if self.device.type == "cuda":
            cuda = list(s["cuda"])
            cuda[self.device.index or 0] = self.generators[k].get_state()
            s["cuda"] = cuda
        else:
            s["torch"] = self.generators[k].get_state()
        return s

    @contextmanager
    def member(self, k: int) -> Iterator[None]:
        """Member k's streams in the global RNGs for the duration (an evaluation)."""
        outer = capture_rng()
        restore_rng(self.state(k))
        try:
            yield
        finally:
            inner = capture_rng()
            self._other[k] = inner
            self.generators[k].set_state(self._device_state(inner))
            restore_rng(outer)


# ---------------------------------------------------------------------------------------------
# Networks


@dataclass
class ParamLink:
    """One ensemble parameter and the K member parameters it stacks.

    ``kind``: ``weight`` (an ``nn.Linear`` weight ``[out, in]``, member k at ``[k] ^T``),
    ``bias`` (a vector ``[out]``: an ``nn.Linear`` bias, or any vector parameter such as IQL's
    log-std; at ``[k, 0]``) or ``ensemble`` (an ``EnsembleLinear`` member of E nets at rows
    ``k E .. (k + 1) E``).
    """

    ens: nn.Parameter
    members: list[nn.Parameter]
    kind: str

    def chunk(self, t: torch.Tensor) -> torch.Tensor:
        """A member's tensor (the parameter, or its optimizer state) as its rows of the ensemble."""
        if self.kind == "weight":
            return t.T[None]
        if self.kind == "bias":
            return t[None, None]
        return t

    def stack(self, ts: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.chunk(t) for t in ts]).contiguous()

    def member_view(self, t: torch.Tensor, k: int) -> torch.Tensor:
        """Undo of ``chunk``: member k's tensor from an ensemble-shaped one."""
        if self.kind == "weight":
            return t[k].T
        if self.kind == "bias":
            return t[k, 0]
        e = self.members[k].shape[0]
        return t[k * e : (k + 1) * e]


class EnsembleMLP(nn.Module):
    """K copies of one MLP (an ``nn.Sequential`` of ``nn.Linear`` or ``EnsembleLinear`` layers
    and parameter-free activations) as one network whose layers are ``EnsembleLinear``.

    ``forward(x [K, ..., in]) -> [K, ..., out]``: member k's output is its MLP on ``x[k]``
    (members that are themselves ensembles of E nets take ``x [K, E, N, in]``).
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        first = list(members[0])
        if any(len(list(m)) != len(first) for m in members):
            raise ValueError("ensemble members must have the same layers")
        self.k = len(members)
        self.member_ensemble = 1  # E of members made of EnsembleLinear layers
        layers: list[nn.Module] = []
        self.links: list[ParamLink] = []
        for i, layer in enumerate(first):
            same = [list(m)[i] for m in members]
            if isinstance(layer, nn.Linear):
                ens = EnsembleLinear(self.k, layer.in_features, layer.out_features)
                kinds = ("weight", "bias")
            elif isinstance(layer, EnsembleLinear):
                e, d_in, d_out = layer.weight.shape
                self.member_ensemble = e
                ens = EnsembleLinear(self.k * e, d_in, d_out)
                kinds = ("ensemble", "ensemble")
            elif not any(True for _ in layer.parameters()):
                layers.append(layer)  # an activation: shared
                continue
            else:
                raise TypeError(f"cannot stack a {type(layer).__name__} layer into an ensemble")
            ens = ens.to(device=layer.weight.device, dtype=layer.weight.dtype)
            self.links.append(ParamLink(ens.weight, [m.weight for m in same], kinds[0]))
            self.links.append(ParamLink(ens.bias, [m.bias for m in same], kinds[1]))
            layers.append(ens)
        self.layers = nn.ModuleList(layers)
        self.load_members()

    @torch.no_grad()
    def load_members(self) -> None:
        """The members' current weights into the ensemble."""
        for link in self.links:
            link.ens.copy_(link.stack([p.detach() for p in link.members]))

    @torch.no_grad()
    def write_back(self) -> None:
        """The ensemble's weights into the members (evaluation, checkpoints use them)."""
        for link in self.links:
            for k, p in enumerate(link.members):
                p.copy_(link.member_view(link.ens, k))

    def forward(self, x: torch.Tensor, detach_weights: bool = False) -> torch.Tensor:
        """``detach_weights``: the same output, with no gradient reaching the weights (a frozen
        network that gradients flow *through*, like ``functional_call`` with detached params)."""
        lead = x.shape[:-1]
        h = x.reshape(self.k * self.member_ensemble, -1, x.shape[-1])
        for layer in self.layers:
            if isinstance(layer, EnsembleLinear):
                w, b = layer.weight, layer.bias
                if detach_weights:
                    w, b = w.detach(), b.detach()
                h = torch.baddbmm(b, h, w)
            else:
                h = layer(h)
        return h.reshape(*lead, h.shape[-1])


# ---------------------------------------------------------------------------------------------
# Optimizers


def _one_group(opt: torch.optim.Optimizer) -> dict:
    if len(opt.param_groups) != 1:
        raise ValueError(f"cannot stack an optimizer with {len(opt.param_groups)} param groups")
    return {k: v for k, v in opt.param_groups[0].items() if k != "params"}


class StackedAdam:
    """One Adam over the ensemble parameters of ``links``, from the K members' own Adams.

    Adam's update is elementwise, so member k's slice of the stacked parameters moves as its
    own optimizer would move its parameters; ``write_back`` puts the state (step count, moments)
    back into the members' optimizers.
    """

    def __init__(self, members: Sequence[torch.optim.Optimizer], links: Sequence[ParamLink]):
        hyper = _one_group(members[0])
        for k, opt in enumerate(members):
            if _one_group(opt) != hyper:
                raise ValueError("the members' optimizers have different settings")
            ids = [id(p) for p in opt.param_groups[0]["params"]]
            if ids != [id(link.members[k]) for link in links]:
                raise ValueError("an optimizer's parameters are not the stacked networks'")
        self.members, self.links = list(members), list(links)
        self.opt = type(members[0])([link.ens for link in links], **hyper)
        self.load_members()

    @torch.no_grad()
    def load_members(self) -> None:
        self.opt.state.clear()
        for link in self.links:
            states = [opt.state.get(p) for opt, p in zip(self.members, link.members, strict=True)]
            if any(not s for s in states):
                if any(states):
                    raise ValueError("some members' optimizers have stepped, others not")
                continue
            ens: dict = {}
            for key, value in states[0].items():
                if isinstance(value, torch.Tensor) and value.shape == link.members[0].shape:
                    ens[key] = link.stack([s[key] for s in states])
                else:  # the step count: one for all (members step together)
                    if any(
                        not torch.equal(torch.as_tensor(s[key]), torch.as_tensor(value))
                        for s in states
                    ):
                        raise ValueError(f"the members' optimizers are at different {key!r}")
                    ens[key] = value.clone() if isinstance(value, torch.Tensor) else value
            self.opt.state[link.ens] = ens

    @torch.no_grad()
    def write_back(self) -> None:
        for link in self.links:
            ens = self.opt.state.get(link.ens)
            if not ens:
                continue
            for k, (opt, p) in enumerate(zip(self.members, link.members, strict=True)):
                opt.state[p] = {
                    key: (
                        link.member_view(v, k).clone()
                        if isinstance(v, torch.Tensor) and v.shape == link.ens.shape
                        else (v.clone() if isinstance(v, torch.Tensor) else v)
                    )
                    for key, v in ens.items()
                }

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.opt.step()


def links_of(*nets: EnsembleMLP) -> list[ParamLink]:
    return [link for net in nets for link in net.links]


# ---------------------------------------------------------------------------------------------
# Batches


def stack_transitions(ts: Sequence[Transitions]) -> Transitions:
    """K members' batches as one: every tensor ``[K, M, N, ...]``, ``task_ids [K, M]``."""
    masks = [t.mask for t in ts]
    mask = None if all(m is None for m in masks) else torch.stack(masks)
    return Transitions(
        *(torch.stack([getattr(t, f) for t in ts]) for f in FIELDS),
        task_ids=torch.stack([t.task_ids for t in ts]),
        mask=mask,
    )


def member_transitions(t: Transitions, k: int) -> Transitions:
    """Member k's batch of a stacked one."""
    return Transitions(
        *(getattr(t, f)[k] for f in FIELDS),
        task_ids=t.task_ids[k],
        mask=None if t.mask is None else t.mask[k],
    )


def flat_members(x: torch.Tensor) -> torch.Tensor:
    """``[K, M, B, D]`` -> ``[K, M * B, D]``: each member's rows, as a run alone flattens its
    ``[M, B, D]`` batch."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


def broadcast_members(z: torch.Tensor, b: int) -> torch.Tensor:
    """``z [K, M, L]`` -> ``[K, M * b, L]``: each member's task representations repeated for
    each of a task's ``b`` rows."""
    k, m, latent = z.shape
    return z[:, :, None].expand(k, m, b, latent).reshape(k, m * b, latent)


def per_member_mean(x: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    """``batch.masked_mean`` of each member: ``x [K, ...]`` -> ``[K]``."""
    k = x.shape[0]
    if w is None:
        return x.reshape(k, -1).mean(1)
    num = (x * w).reshape(k, -1).sum(1)
    return num / (w.reshape(k, -1).sum(1) * x.shape[-1]).clamp_min(1.0)
