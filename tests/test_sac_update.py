"""The SAC update after its split into draws + ``update_tensors`` (graphable), bf16 autocast as
a dataset-key field, and the graphed update on CUDA (``GraphedSACUpdate``)."""

from __future__ import annotations

import pytest
import torch

from ertrl_bench.data.rng import TaskStreams
from ertrl_bench.data.sac import TARGET_UPDATE_PERIOD, BatchedSAC, TaskReplay, temperature_loss
from ertrl_bench.data.tiers import DataTier
from ertrl_bench.nn import soft_update

OBS, ACT, TASKS = 3, 2, 3
CFG = DataTier(sac_steps=100, random_steps=10, checkpoints=[100], sac_hidden=(32, 32), sac_batch=8)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def reference_update(sac: BatchedSAC, replay: TaskReplay, step: int) -> None:
    """``BatchedSAC.update`` as it was before the split (commit a081571), kept to check that
    the refactored update computes the same numbers."""
    cfg, st = sac.cfg, sac.streams
    idx = None if st is None else st.randint(replay.size, cfg.sac_batch)
    obs, act, rew, next_obs, done = replay.sample(cfg.sac_batch, idx)
    noise1 = None if st is None else st.normal(cfg.sac_batch, sac.act_dim)
    noise2 = None if st is None else st.normal(cfg.sac_batch, sac.act_dim)
    alpha = sac.log_alpha.exp().detach()[:, None]
    with torch.no_grad():
        next_a, next_logp = sac.actor(next_obs, noise=noise1)
        tq1, tq2 = sac.critic_target(next_obs, next_a)
        target = rew + cfg.discount * (1 - done) * (torch.min(tq1, tq2) - alpha * next_logp)
    q1, q2 = sac.critic(obs, act)
    critic_loss = ((q1 - target).pow(2).mean(1) + (q2 - target).pow(2).mean(1)).sum()
    sac.critic_opt.zero_grad(set_to_none=True)
    critic_loss.backward()
    sac.critic_opt.step()
    new_a, logp = sac.actor(obs, noise=noise2)
    sac.critic.requires_grad_(False)
    nq1, nq2 = sac.critic(obs, new_a)
    sac.critic.requires_grad_(True)
    actor_loss = (alpha * logp - torch.min(nq1, nq2)).mean(1).sum()
    sac.actor_opt.zero_grad(set_to_none=True)
    actor_loss.backward()
    sac.actor_opt.step()
    alpha_loss = temperature_loss(sac.log_alpha, logp.detach(), sac.target_entropy)
    sac.alpha_opt.zero_grad(set_to_none=True)
    alpha_loss.backward()
    sac.alpha_opt.step()
    if step % TARGET_UPDATE_PERIOD == 0:
        soft_update(sac.critic_target, sac.critic, cfg.tau)


def _replay(device, n: int = 40) -> TaskReplay:
    g = torch.Generator().manual_seed(0)
    replay = TaskReplay(TASKS, n, OBS, ACT, device)
    for _ in range(n // 2):  # half full: the rows drawn depend on the size
        replay.add(
            *(
                x.to(device)
                for x in (
                    torch.randn(TASKS, OBS, generator=g),
                    torch.rand(TASKS, ACT, generator=g) * 2 - 1,
                    torch.randn(TASKS, generator=g),
                    torch.randn(TASKS, OBS, generator=g),
                    (torch.rand(TASKS, generator=g) < 0.1).float(),
                )
            )
        )
    return replay


def _sac(device="cpu", cfg=CFG, streams=True, cuda_graph=False) -> BatchedSAC:
    st = TaskStreams(0, range(TASKS), device) if streams else None
    return BatchedSAC(TASKS, OBS, ACT, cfg, device, st, cuda_graph)


def _state(sac: BatchedSAC) -> list[torch.Tensor]:
    return [
        *sac.actor.parameters(),
        *sac.critic.parameters(),
        *sac.critic_target.parameters(),
        sac.log_alpha,
    ]


@pytest.mark.parametrize("streams", [True, False], ids=["task-streams", "torch-rng"])
def test_the_split_update_computes_the_old_updates_numbers(streams):
    """Bit for bit on CPU: same draws in the same order, same operations."""
    torch.manual_seed(5)
    old, new = _sac(streams=streams), _sac(streams=streams)
    new.actor.load_state_dict(old.actor.state_dict())
    new.critic.load_state_dict(old.critic.state_dict())
    new.critic_target.load_state_dict(old.critic_target.state_dict())
    r_old, r_new = _replay("cpu"), _replay("cpu")
    for step in range(6):
        torch.manual_seed(100 + step)
        reference_update(old, r_old, step)
        torch.manual_seed(100 + step)
        new.update(r_new, step)
        r_old.add(*(getattr(r_old, f)[:, step] for f in TaskReplay._FIELDS))
        r_new.add(*(getattr(r_new, f)[:, step] for f in TaskReplay._FIELDS))
    for a, b in zip(_state(old), _state(new), strict=True):
        assert torch.equal(a, b)
    assert new.graph is None  # off CUDA the option does not exist


def test_cuda_graph_is_ignored_off_cuda():
    plain, graphed = _sac(), _sac(cuda_graph=True)
    assert graphed.graph is None
    r1, r2 = _replay("cpu"), _replay("cpu")
    for step in range(3):
        plain.update(r1, step), graphed.update(r2, step)
    for a, b in zip(_state(plain), _state(graphed), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="needs per-task streams"):
        _sac(streams=False, cuda_graph=True)


def test_bf16_autocast_changes_the_numbers_and_the_dataset_key():
    bf16 = CFG.model_copy(update={"sac_autocast": "bf16"})
    plain, low = _sac(), _sac(cfg=bf16)
    r1, r2 = _replay("cpu"), _replay("cpu")
    for step in range(3):
        plain.update(r1, step), low.update(r2, step)
    assert all(torch.isfinite(p).all() for p in _state(low))
    assert any(not torch.equal(a, b) for a, b in zip(_state(plain), _state(low), strict=True))
    assert low.actor.net[0].weight.dtype == torch.float32  # master weights stay float32


# the dataset keys of a081571 (before sac_autocast existed): defaults must keep them, so the
# caches users built stay valid
KEYS_BEFORE = {
    ("point-robot", "smoke"): "c611b07be7be",
    ("point-robot", "paper"): "06161ca73f64",
    ("cheetah-vel", "smoke"): "10a16d053389",
    ("cheetah-vel", "paper"): "3595fe72b15d",
}


@pytest.mark.parametrize("name, tier", list(KEYS_BEFORE))
def test_default_dataset_keys_are_unchanged_and_bf16_has_its_own(name, tier):
    from ertrl_bench.data import dataset_key
    from ertrl_bench.data.tiers import resolve_tier
    from ertrl_bench.envs.point_robot import PointRobot
    from tests.test_mujoco_envs import family

    fam = PointRobot() if name == "point-robot" else family(name)
    t = resolve_tier(tier, fam, None)
    assert t.sac_autocast == "off"
    tasks = fam.all_tasks(t.task_seed)
    assert dataset_key(fam, t, tasks) == KEYS_BEFORE[name, tier]
    bf16 = resolve_tier(tier, fam, {"sac_autocast": "bf16"})
    assert dataset_key(fam, bf16, tasks) != KEYS_BEFORE[name, tier]


def test_an_unknown_autocast_is_a_named_error():
    from ertrl_bench.data.tiers import resolve_tier
    from ertrl_bench.envs.point_robot import PointRobot
    from ertrl_bench.errors import ErtrlError

    with pytest.raises(ErtrlError, match="sac_autocast"):
        resolve_tier("smoke", PointRobot(), {"sac_autocast": "fp8"})


# ----------------------------------------------------------------- CUDA only (skipped without)


def _twins(cfg=CFG, capturable_eager=True):
    """Two SACs with the same start on CUDA: one graphed, one eager (capturable Adam too if
    ``capturable_eager``, the graphed one's optimizer arithmetic)."""
    dev = torch.device("cuda")
    eager, graphed = _sac(dev, cfg), _sac(dev, cfg, cuda_graph=True)
    if capturable_eager:
        for opt in (eager.actor_opt, eager.critic_opt, eager.alpha_opt):
            for group in opt.param_groups:
                group["capturable"] = True
    return eager, graphed, _replay(dev), _replay(dev)


def _run_both(eager, graphed, r1, r2, steps=8):
    for step in range(steps):
        eager.update(r1, step)
        graphed.update(r2, step)
        for r in (r1, r2):  # the buffer grows between updates, as in a build
            r.add(*(getattr(r, f)[:, step] for f in TaskReplay._FIELDS))
    torch.cuda.synchronize()


@cuda
def test_graphed_update_equals_eager_on_cuda():
    """Same start, same per-task streams: the replays compute the eager updates' numbers (the
    draws are made eagerly, so the streams advance alike)."""
    eager, graphed, r1, r2 = _twins()
    _run_both(eager, graphed, r1, r2)
    assert graphed.graph.graph is not None  # the later updates were replays
    for a, b in zip(_state(eager), _state(graphed), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert eager.streams.state()["torch"][0].equal(graphed.streams.state()["torch"][0])


@cuda
def test_graphed_update_is_close_to_the_default_eager_one_on_cuda():
    """Against the default (non-capturable) Adam: float tolerance, as CPU vs CUDA."""
    eager, graphed, r1, r2 = _twins(capturable_eager=False)
    _run_both(eager, graphed, r1, r2)
    for a, b in zip(_state(eager), _state(graphed), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@cuda
def test_graphed_bf16_update_equals_eager_bf16_on_cuda():
    bf16 = CFG.model_copy(update={"sac_autocast": "bf16"})
    eager, graphed, r1, r2 = _twins(bf16)
    _run_both(eager, graphed, r1, r2)
    for a, b in zip(_state(eager), _state(graphed), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


@cuda
def test_a_graphed_behavior_build_runs_on_cuda():
    from ertrl_bench.data.sac import train_behavior_policies
    from ertrl_bench.envs.point_robot import PointRobot

    fam = PointRobot()
    tasks = fam.all_tasks()[:2]
    cfg = CFG.model_copy(update={"sac_steps": 40, "random_steps": 10, "checkpoints": [40]})
    sac, snapshots, _ = train_behavior_policies(
        fam.make_batch(tasks), *fam.spaces(), cfg, "cuda", cuda_graph=True, task_indices=[0, 1]
    )
    assert sac.graph is not None and sac.graph.graph is not None and list(snapshots) == [40]
