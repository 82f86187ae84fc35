"""``unicorn``: UNICORN's reconstruction term -- z must predict the task's dynamics and reward.

A decoder MLP (2 x 256) predicts the normalised ``[(s' - s) / std(s), (r - mean_r) / std_r]``
of each **RL-batch** transition (``batch.rl``, 256 per task, as the authors) from (s, a, z), z
the task's pooled encoding broadcast to its transitions. Its MSE, times ``weight``
(docs/paper.md: 1.5 Ant/Cheetah/Humanoid, 15 Hopper, 7 Walker; ``component_defaults``), trains
the encoder *and* the decoder: the decoder's parameters are returned by ``joint_parameters()``
and join the encoder's optimizer, so ``update`` has no network to train.

Normalisation, as the authors (docs/paper.md, UNICORN): fixed statistics of ONE training task's
data, the task with grid index ``n_grid // 2 - 1`` = 19 in every family, Ant-Goal included
(``problem.stats``, ``problem.reference_task_index``):
the state difference is divided by std(s) per dimension and **not centred**; the reward is
centred and scaled. Stds are floored at ``min_std``. Where no dataset statistics exist (a
``Problem`` built without ``stats``, e.g. by the conformance checkers), the first RL batch's
statistics are frozen instead.
"""

from __future__ import annotations

import torch

from ertrl_bench.batch import Transitions, masked_mean
from ertrl_bench.components import StepBatch
from ertrl_bench.encoder_losses.options import UnicornOptions
from ertrl_bench.ensemble import EnsembleMLP, member_transitions, per_member_mean
from ertrl_bench.nn import mlp
from ertrl_bench.problem import DataStats, Problem


class UnicornLoss:
    """A (s, a, z) -> (s' - s, r) decoder trained jointly with the encoder."""

    def __init__(self, options: UnicornOptions, problem: Problem):
        self.options = options
        self.device = problem.device
        self.weight = options.weight
        ds, da, dz = problem.obs_dim, problem.act_dim, problem.latent_dim
        self.decoder = mlp(ds + da + dz, options.hidden, ds + 1, init=problem.init)
        self.decoder = self.decoder.to(self.device)
        self.scale: torch.Tensor | None = None  # [ds + 1] divisor of the targets
        self.shift: torch.Tensor | None = None  # [ds + 1] subtracted first (0 for s' - s)
        if problem.stats is not None:
            self._set_stats(problem.stats)

    def _set_stats(self, stats: DataStats) -> None:
        floor = self.options.min_std
        ds = stats.obs_std.shape[0]
        self.scale = torch.cat([stats.obs_std.reshape(ds), stats.reward_std.reshape(1)])
        self.scale = self.scale.clamp_min(floor).to(self.device, torch.float32)
        self.shift = torch.cat([torch.zeros(ds), stats.reward_mean.reshape(1).cpu()])
        self.shift = self.shift.to(self.device, torch.float32)

    @staticmethod
    def targets(t: Transitions) -> torch.Tensor:
        """Raw ``(s' - s, r)`` of each transition ``[M, B, ds + 1]``."""
        return torch.cat([t.next_obs - t.obs, t.rewards], dim=-1)

    def normalised_targets(self, t: Transitions) -> torch.Tensor:
        if self.scale is None:  # no dataset statistics: freeze the first batch's
            self._set_stats(DataStats.of(t.obs.reshape(-1, t.obs.shape[-1]), t.rewards))
        return (self.targets(t) - self.shift) / self.scale

    def update(self, batch: StepBatch) -> dict:
        return {}  # the decoder is trained with the encoder (joint_parameters)

    def predict(self, t: Transitions, z: torch.Tensor) -> torch.Tensor:
        z_b = StepBatch.broadcast(z, t.obs.shape[1])
        return self.decoder(torch.cat([t.obs, t.actions, z_b], dim=-1))

    def encoder_loss(self, batch: StepBatch):
        rl = batch.rl
        err = (self.predict(rl, batch.z) - self.normalised_targets(rl)).pow(2)  # [M, B, ds + 1]
        mse = masked_mean(err, rl.weights())
        return self.weight * mse, {"unicorn/mse": mse.detach()}

    def joint_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.decoder.parameters())

    def state_dict(self) -> dict:
        return {"decoder": self.decoder.state_dict(), "scale": self.scale, "shift": self.shift}

    def load_state_dict(self, state: dict) -> None:
        self.decoder.load_state_dict(state["decoder"])
        self.scale, self.shift = state["scale"], state["shift"]

    @classmethod
    def ensemble(cls, members: list[UnicornLoss], rng) -> UnicornLossEnsemble:
        return UnicornLossEnsemble(members)


class UnicornLossEnsemble:
    """K seeds' ``UnicornLoss`` (``ertrl_bench.ensemble``): the decoder is an ``EnsembleMLP``
    (its parameters join the stacked encoder optimizer: ``joint_links``)."""

    def __init__(self, members: list[UnicornLoss]):
        self.members = members
        self.weight = members[0].weight
        self.decoder = EnsembleMLP([m.decoder for m in members])

    def update(self, batch: StepBatch) -> dict:
        return {}

    def encoder_loss(self, batch: StepBatch):
        rl = batch.rl
        z_b = batch.z[:, :, None, :].expand(-1, -1, rl.obs.shape[2], -1)
        pred = self.decoder(torch.cat([rl.obs, rl.actions, z_b], dim=-1))
        targets = torch.stack(  # each member's own normalisation (frozen on its first batch)
            [m.normalised_targets(member_transitions(rl, k)) for k, m in enumerate(self.members)]
        )
        mse = per_member_mean((pred - targets).pow(2), rl.weights())
        return self.weight * mse, {"unicorn/mse": mse.detach()}

    def joint_links(self) -> list:
        return self.decoder.links

    def write_back(self) -> None:
        self.decoder.write_back()
