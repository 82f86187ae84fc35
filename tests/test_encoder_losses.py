"""Proof that the context regularizers do their job (csro, gan_entropy, unicorn).

The main experiment (``trained``): a synthetic offline meta-RL problem where the behavior policy
leaks into the context. 8 tasks x 2 behavior policies = 16 datasets of 2000 transitions:

* states s ~ U[-1, 1]^2, the same for every dataset;
* behavior b in {0, 1}: a = clip(N(m_b, 0.4^2 I), -1, 1), m_0 = (+0.4, +0.4), m_1 = -m_0
  (overlapping: (s, a) tells b apart ~93% of the time, a single transition's Bayes limit);
* task k: r = c_k - ||s + 0.5 a||, c_k = linspace(-1, 1, 8); s' = s + 0.5 a.

Every task has a dataset from *both* policies, and each train step picks one of them at random
per task, so the behavior policy is not a function of the task. The task is fully identifiable
from one transition (c_k = r + ||s + 0.5 a||) by a representation that ignores the behavior
policy; but r's and a's distributions differ between policies, an easy extra feature that the
distance-metric loss (push tasks apart) is glad to use. Each regularizer trains the same encoder
(MLPEncoder 64-64, latent 8, Adam 1e-3) with FOCAL's DML (weight 10) for the same budget and
seed; a held-out logistic-regression probe then reads the behavior policy from the
per-transition encodings z_i (PAPER.md's probe protocol: per-transition, 50/50 split by sample)
and the task from the pooled z. Measured (CPU, torch 2.13; the asserted margins are below):

    regularizer   behavior probe (z_i)   task probe (z)
    none          0.92                   1.00
    csro          0.48                   1.00
    gan_entropy   0.52                   1.00

Encoder-loss weights are the paper's Ant values (csro 50, gan 5, through the family's hparams).
The losses' hidden sizes are shrunk to 64-64 and the GAN's lr raised to 1e-3 to fit a CPU
test budget (paper: 200-200-200 / 256-256 / 2e-4); everything else is the paper's algorithm.
"""

from __future__ import annotations

import math

import numpy as np
import ot
import pydantic
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from ertrl_bench.batch import TaskDataset, Transitions
from ertrl_bench.components import StepBatch
from ertrl_bench.encoder_losses.csro import CSROLoss, CSROOptions, club_terms
from ertrl_bench.encoder_losses.gan_entropy import (
    GANEntropyLoss,
    GANEntropyOptions,
    gaussian_entropy,
)
from ertrl_bench.encoder_losses.none import NoLoss, NoneOptions
from ertrl_bench.encoder_losses.unicorn import UnicornLoss, UnicornOptions
from ertrl_bench.encoders.mlp import MLPEncoder, MLPEncoderOptions
from ertrl_bench.envs.base import FamilyHParams
from ertrl_bench.envs.mujoco import FAMILIES
from ertrl_bench.envs.point_robot import PointRobot
from ertrl_bench.losses import dml_loss
from ertrl_bench.problem import DataStats, Problem, reference_stats, reference_task_index

CPU = torch.device("cpu")
K, B, N, C, LATENT = 8, 2, 2000, 32, 8  # tasks, behavior policies, transitions, context, z size
SMALL = (64, 64)


class LeakyFamily(PointRobot):
    """Only its hparams matter here: latent 8."""

    hparams = FamilyHParams(latent_dim=LATENT)


def problem(family=None, obs_dim=2, act_dim=2, stats=None) -> Problem:
    # torch's init, as this experiment was designed with: under rlkit's (the default, +-3e-3
    # output layers) even the unregularised encoder's z_i leaks no behavior after 1500 steps
    # (probe at chance, 0.48), so the premise "none leaks" would not hold at this scale
    return Problem(family or LeakyFamily(), obs_dim, act_dim, LATENT, CPU, stats, init="torch")


def sb(ctx, z_i, z, rl=None) -> StepBatch:
    """A ``StepBatch`` as the training loop builds it (the RL batch defaults to the context)."""
    return StepBatch(ctx, ctx if rl is None else rl, z_i, z, encode=lambda t: (None, None))


def make_data(seed: int = 0) -> dict[str, torch.Tensor]:
    """Fields ``[K, B, N, dim]``: task k's dataset collected by behavior policy b."""
    g = torch.Generator().manual_seed(seed)
    means = torch.tensor([[0.4, 0.4], [-0.4, -0.4]])
    s = torch.rand(K, B, N, 2, generator=g) * 2 - 1
    a = (means[None, :, None, :] + 0.4 * torch.randn(K, B, N, 2, generator=g)).clamp(-1, 1)
    s2 = s + 0.5 * a
    c = torch.linspace(-1, 1, K)
    r = c[:, None, None, None] - s2.norm(dim=-1, keepdim=True)
    return dict(obs=s, actions=a, rewards=r, next_obs=s2, dones=torch.zeros_like(r))


def context(data, k: torch.Tensor, b: torch.Tensor, idx: torch.Tensor) -> Transitions:
    """Transitions ``idx [M, C]`` of datasets (k[m], b[m]); task ids = k."""
    f = {name: data[name][k[:, None], b[:, None], idx] for name in data}
    return Transitions(f["obs"], f["actions"], f["rewards"], f["next_obs"], f["dones"], task_ids=k)


def make_regularizer(kind: str, prob: Problem):
    if kind == "none":
        return NoLoss(NoneOptions(), prob)
    if kind == "csro":  # Ant's weight (docs/paper.md)
        return CSROLoss(CSROOptions(hidden=SMALL, weight=50.0), prob)
    return GANEntropyLoss(
        GANEntropyOptions(generator_hidden=SMALL, discriminator_hidden=SMALL, lr=1e-3), prob
    )


def train(kind: str, steps: int, seed: int = 0):
    """The training loop of ``encoder_losses/base.py`` on the leaky problem; returns the pieces."""
    torch.manual_seed(seed)
    data = make_data()
    prob = problem()
    enc = MLPEncoder(MLPEncoderOptions(hidden=SMALL), problem())  # (s, a, r): 5 features
    reg = make_regularizer(kind, prob)
    opt = torch.optim.Adam(enc.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed + 1)
    tasks = torch.arange(K)
    for _ in range(steps):
        b = torch.randint(0, B, (K,), generator=g)  # each task's dataset this step: random policy
        ctx = context(data, tasks, b, torch.randint(0, N, (K, C), generator=g))
        rl = context(data, tasks, b, torch.randint(0, N, (K, C), generator=g))  # same datasets
        z_i, z = enc(ctx.features(False))
        batch = sb(ctx, z_i, z, rl)
        reg.update(batch.detached())
        loss, _ = reg.encoder_loss(batch)
        dml, _ = dml_loss(z, ctx.task_ids)
        opt.zero_grad()
        (10.0 * dml + loss).backward()
        opt.step()
    return {"enc": enc, "reg": reg, "data": data}


def probe(enc, data, seed: int = 123) -> dict[str, float]:
    """Held-out logistic-regression probes: behavior from z_i, task from pooled z."""
    g = torch.Generator().manual_seed(seed)
    kk, bb = torch.meshgrid(torch.arange(K), torch.arange(B), indexing="ij")
    kk, bb = kk.reshape(-1).repeat(40), bb.reshape(-1).repeat(40)  # 40 contexts per dataset
    with torch.no_grad():
        z_i, z = enc(
            context(data, kk, bb, torch.randint(0, N, (len(kk), C), generator=g)).features(False)
        )
    per = 4  # transitions per context used by the per-transition probe -> 2560 samples
    zi = z_i[:, :per].reshape(-1, LATENT).numpy()
    yb = bb[:, None].expand(-1, per).reshape(-1).numpy()
    xtr, xte, ytr, yte = train_test_split(zi, yb, test_size=0.5, random_state=0, stratify=yb)
    behavior = LogisticRegression(max_iter=2000).fit(xtr, ytr).score(xte, yte)
    yk = kk.numpy()
    xtr, xte, ytr, yte = train_test_split(z.numpy(), yk, test_size=0.5, random_state=0, stratify=yk)
    task = LogisticRegression(max_iter=2000).fit(xtr, ytr).score(xte, yte)
    return {"behavior": behavior, "task": task}


def gan_w2(enc, reg: GANEntropyLoss, data, n_tasks: int = K, seed: int = 7) -> float:
    """Mean over the datasets of W2^2 (POT, exact) between G's actions and the dataset's."""
    g = torch.Generator().manual_seed(seed)
    kk, bb = torch.meshgrid(torch.arange(n_tasks), torch.arange(B), indexing="ij")
    kk, bb = kk.reshape(-1), bb.reshape(-1)
    ctx = context(data, kk, bb, torch.randint(0, N, (len(kk), 256), generator=g))
    with torch.no_grad(), torch.random.fork_rng():  # leave the caller's RNG stream alone
        _, z = enc(ctx.features(False))
        torch.manual_seed(seed)
        fake = reg.generate(ctx.obs, reg.broadcast(z, ctx))
    out = []
    for m in range(len(kk)):
        x, y = fake[m].double().numpy(), ctx.actions[m].double().numpy()
        cost = ot.dist(x, y)  # squared Euclidean
        out.append(ot.emd2(ot.unif(len(x)), ot.unif(len(y)), cost))
    return float(np.mean(out))


STEPS = {"none": 1500, "csro": 1500, "gan_entropy": 2000}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small nets: one thread is faster, and oversubscribed threads are many times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def trained():
    runs = {kind: train(kind, steps) for kind, steps in STEPS.items()}
    for run in runs.values():
        run["probe"] = probe(run["enc"], run["data"])
    print({k: r["probe"] for k, r in runs.items()})
    return runs


# --- the experiment ---------------------------------------------------------------------------


def test_none_leaks_the_behavior_policy(trained):
    # the premise: without a regularizer the behavior policy is decodable from z_i
    assert trained["none"]["probe"]["behavior"] > 0.85


@pytest.mark.parametrize("kind", ["csro", "gan_entropy"])
def test_regularizer_hides_the_behavior_policy(trained, kind):
    none, reg = trained["none"]["probe"], trained[kind]["probe"]
    margin = {"csro": 0.20, "gan_entropy": 0.15}[kind]  # measured: 0.43 and 0.40
    assert reg["behavior"] < none["behavior"] - margin, (kind, reg, none)


@pytest.mark.parametrize("kind", ["none", "csro", "gan_entropy"])
def test_task_stays_decodable(trained, kind):
    assert trained[kind]["probe"]["task"] > 0.9  # 8 classes: chance 0.125


def _gan_w2_during_training(n_tasks: int, updates: int, every: int) -> tuple[float, list[float]]:
    """W2^2 before GAN training, and after every ``every`` ``update`` calls."""
    torch.manual_seed(0)
    data = {name: t[:n_tasks] for name, t in make_data().items()}
    # the paper's GAN lr (2e-4): at 1e-3 this small GAN oscillates (W2 up and down by 3x)
    reg = GANEntropyLoss(
        GANEntropyOptions(generator_hidden=SMALL, discriminator_hidden=SMALL), problem()
    )
    kk, bb = torch.meshgrid(torch.arange(n_tasks), torch.arange(B), indexing="ij")
    kk, bb = kk.reshape(-1), bb.reshape(-1)
    codes = torch.tanh(torch.randn(n_tasks * B, LATENT, generator=torch.Generator().manual_seed(1)))

    def z_of(enc_input, mask=None):  # the "encoder": the dataset's code
        return None, codes

    before, during = gan_w2(z_of, reg, data, n_tasks), []
    g = torch.Generator().manual_seed(2)
    for i in range(updates):
        ctx = context(data, kk, bb, torch.randint(0, N, (len(kk), C), generator=g))
        reg.update(sb(ctx, None, codes))
        if (i + 1) % every == 0:
            during.append(gan_w2(z_of, reg, data, n_tasks))
    return before, during


def test_gan_learns_the_behavior_policy():
    """G's actions match the dataset's better after GAN training than before (W2^2, POT).

    z is held fixed at a code per dataset (it names task and behavior), so the GAN's target
    pi_beta(a | s, z) is that dataset's behavior policy. Fast variant: 2 tasks x 2 policies,
    1600 ``update`` calls x 5 GAN steps. Even at the paper's lr the GAN oscillates, so one
    snapshot's W2 is noisy (after 1000 calls: 0.07-0.46 over torch seeds 0-5, and 0.15 vs 0.46
    for seed 0 on two CPUs whose float rounding differs): the test averages the last four
    snapshots (1000, 1200, 1400, 1600 calls).
    Measured over torch seeds 0-5: before 0.52-0.58, late mean 0.15-0.31.
    (Inside ER-TRL the encoder also moves z to where G is
    broad, so G models the policy *mixture* that z no longer tells apart: no fixed target.)
    """
    before, during = _gan_w2_during_training(n_tasks=2, updates=1600, every=200)
    late = float(np.mean(during[-4:]))
    assert late < 0.7 * before, (late, before, during)


@pytest.mark.slow
def test_gan_learns_the_behavior_policy_all_datasets():
    """The same on all 16 datasets, which take twice the updates: measured W2^2 0.56 before,
    0.26 as the mean of the snapshots at 2600-3200 calls (at 1000-1600 calls still 0.42)."""
    before, during = _gan_w2_during_training(n_tasks=K, updates=3200, every=200)
    late = float(np.mean(during[-4:]))
    assert late < 0.7 * before, (late, before, during)


# --- CSRO ---------------------------------------------------------------------------------------


def test_club_closed_form_equals_the_pairwise_sum():
    torch.manual_seed(0)
    z, mu = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    var = torch.rand(3, 5, 4) + 0.1
    pos, neg = club_terms(z, mu, var)
    pairs = (z[:, None, :, :] - mu[:, :, None, :]).pow(2) / var[:, :, None, :]  # [M, i, j, L]
    torch.testing.assert_close(neg, -pairs.mean())
    torch.testing.assert_close(pos, -((z - mu).pow(2) / var).mean())
    # a mask drops transitions: same as computing on the valid ones only (equal counts per task)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[:, 3:] = False
    w = mask.float().unsqueeze(-1)
    pos_m, neg_m = club_terms(z, mu, var, w)
    pos_t, neg_t = club_terms(z[:, :3], mu[:, :3], var[:, :3])
    torch.testing.assert_close((pos_m, neg_m), (pos_t, neg_t))


def _fit_club(z_of, steps=150):
    torch.manual_seed(0)
    reg = CSROLoss(CSROOptions(hidden=SMALL, lr=1e-3), problem())
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        ctx = _random_ctx(g, c=32)
        reg.update(sb(ctx, z_of(ctx), None))
    ctx = _random_ctx(g)
    return float(reg.encoder_loss(sb(ctx, z_of(ctx), None))[1]["csro/club"])


def _random_ctx(g, m=8, c=64, ds=2, da=2) -> Transitions:
    s, a = torch.randn(m, c, ds, generator=g), torch.randn(m, c, da, generator=g)
    r = torch.randn(m, c, 1, generator=g)
    return Transitions(s, a, r, s + a, torch.zeros_like(r), task_ids=torch.arange(m))


def test_club_is_larger_when_z_depends_on_s_a():
    proj = torch.randn(4, LATENT, generator=torch.Generator().manual_seed(2))

    def dependent(ctx):
        return torch.tanh(torch.cat([ctx.obs, ctx.actions], -1) @ proj)

    g = torch.Generator().manual_seed(3)

    def independent(ctx):  # a per-task code plus noise, independent of (s, a)
        code = torch.tanh(torch.randn(ctx.num_tasks, 1, LATENT, generator=g))
        return code + 0.1 * torch.randn(*ctx.obs.shape[:2], LATENT, generator=g)

    dep, ind = _fit_club(dependent), _fit_club(independent)
    assert dep > 1.0 and abs(ind) < 0.2 and dep > ind + 1.0, (dep, ind)


# --- ER-TRL's entropy ---------------------------------------------------------------------------


def test_gaussian_entropy_matches_closed_form():
    x = torch.randn(2, 4000, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor(
        [1, 2, 3]
    )
    h = gaussian_entropy(x)
    cov = torch.stack([torch.cov(xm.T) for xm in x])
    expected = torch.distributions.MultivariateNormal(torch.zeros(2, 3), cov + 1e-5 * torch.eye(3))
    torch.testing.assert_close(h, expected.entropy(), rtol=1e-4, atol=1e-4)
    # analytically ~ 0.5 * log((2 pi e)^3 * 36)
    assert abs(float(h[0]) - 0.5 * (3 * math.log(2 * math.pi * math.e) + math.log(36))) < 0.05


def test_gaussian_entropy_is_nan_not_an_error_for_a_singular_covariance():
    """A task whose generated actions all coincide (jitter 0: a singular covariance) gives NaN,
    which the step's finiteness check names, without a host sync to raise on the spot."""
    x = torch.randn(2, 50, 3, generator=torch.Generator().manual_seed(0))
    x[1] = 0.5  # every sample of task 1 the same
    h = gaussian_entropy(x, jitter=0.0)
    assert torch.isfinite(h[0]) and torch.isnan(h[1])


def test_entropy_gradient_spreads_the_generated_actions():
    torch.manual_seed(0)
    reg = GANEntropyLoss(GANEntropyOptions(generator_hidden=SMALL), problem())
    ctx = _random_ctx(torch.Generator().manual_seed(3), m=4, c=128)
    # the loss's gradient w.r.t. each generated action points away from its task's mean
    x = torch.randn(4, 128, 2, requires_grad=True)
    (-gaussian_entropy(x).mean()).backward()
    outward = (-x.grad * (x.detach() - x.detach().mean(1, keepdim=True))).sum(-1)
    assert bool((outward > 0).all())
    # gradient steps on z alone (G frozen) make G's actions for each task spread out
    z = torch.zeros(4, LATENT, requires_grad=True)
    opt = torch.optim.SGD([z], lr=0.5)

    def spread():
        with torch.no_grad():
            torch.manual_seed(1)
            return float(reg.generate(ctx.obs, reg.broadcast(z, ctx)).std(1).mean())

    before = spread()
    g_before = [p.detach().clone() for p in reg.generator.parameters()]
    for _ in range(100):
        loss, logs = reg.encoder_loss(sb(ctx, None, z))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert spread() > 1.3 * before, (before, spread())
    # G was not trained by the encoder loss and holds no gradient
    assert all(p.grad is None for p in reg.generator.parameters())
    assert all(torch.equal(a, b) for a, b in zip(g_before, reg.generator.parameters(), strict=True))


def test_gan_update_trains_only_its_networks():
    torch.manual_seed(0)
    reg = GANEntropyLoss(GANEntropyOptions(generator_hidden=SMALL, gan_steps=2), problem())
    ctx = _random_ctx(torch.Generator().manual_seed(4), m=4, c=16)
    z = torch.randn(4, LATENT, requires_grad=True)
    before = [p.detach().clone() for p in reg.discriminator.parameters()]
    logs = reg.update(sb(ctx, None, z.detach()))
    assert set(logs) == {"gan/d_loss", "gan/g_loss"} and z.grad is None
    assert not all(
        torch.equal(a, b) for a, b in zip(before, reg.discriminator.parameters(), strict=True)
    )


def test_masked_transitions_are_ignored():
    """A padded context gives the same losses as the valid part alone (online contexts)."""
    g = torch.Generator().manual_seed(5)
    ctx = _random_ctx(g, m=3, c=10)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[:, 6:] = False
    padded = Transitions(
        *(t.clone() for t in (ctx.obs, ctx.actions, ctx.rewards, ctx.next_obs, ctx.dones)),
        task_ids=ctx.task_ids,
        mask=mask,
    )
    padded.actions[:, 6:] = 1e3  # garbage where the mask is off
    valid = Transitions(
        *(t[:, :6] for t in (ctx.obs, ctx.actions, ctx.rewards, ctx.next_obs, ctx.dones)),
        task_ids=ctx.task_ids,
    )
    z_i = torch.randn(3, 10, LATENT, generator=g)
    z = torch.randn(3, LATENT, generator=g)
    for cls, opts in [
        (CSROLoss, CSROOptions(hidden=SMALL)),
        (GANEntropyLoss, GANEntropyOptions(generator_hidden=SMALL)),
        (UnicornLoss, UnicornOptions(hidden=SMALL)),
    ]:
        torch.manual_seed(0)
        reg = cls(opts, problem())
        torch.manual_seed(1)
        a, _ = reg.encoder_loss(sb(padded, z_i, z))
        if cls is GANEntropyLoss:  # its noise has the padded shape: vary the garbage
            padded.obs[:, 6:] = -7.0
            torch.manual_seed(1)
            b, _ = reg.encoder_loss(sb(padded, z_i, z))
        else:
            b, _ = reg.encoder_loss(sb(valid, z_i[:, :6], z))
        torch.testing.assert_close(a, b)
    x = torch.randn(3, 10, 2, generator=g)
    w = mask.float().unsqueeze(-1)
    torch.testing.assert_close(gaussian_entropy(x, w), gaussian_entropy(x[:, :6]))


# --- the RL batch: ER-TRL's GAN and entropy, UNICORN's decoder --------------------------------


def _two_batches(g, m=3, c=5, b=12):
    """A context and an RL batch of the same tasks; the context holds NaN (must not be read)."""
    rl = _random_ctx(g, m=m, c=b)
    ctx = _random_ctx(g, m=m, c=c)
    for t in (ctx.obs, ctx.actions, ctx.rewards, ctx.next_obs):
        t.fill_(float("nan"))
    return ctx, rl


def test_gan_trains_and_measures_entropy_on_the_rl_batch():
    """The authors' GAN sees the RL batch's (s, a) (docs/paper.md, ER-TRL): D's real rows are
    exactly the RL batch's, and G is conditioned on the RL batch's states."""
    g = torch.Generator().manual_seed(8)
    ctx, rl = _two_batches(g)
    z = torch.randn(3, LATENT, generator=g)
    reg = GANEntropyLoss(GANEntropyOptions(generator_hidden=SMALL, gan_steps=1), problem())
    seen = []
    hook = reg.discriminator.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    g_in = []
    hook_g = reg.generator.register_forward_hook(lambda mod, inp, out: g_in.append(inp[0]))
    logs = reg.update(sb(ctx, z[:, None].expand(-1, 5, -1), z, rl).detached())
    hook.remove()
    hook_g.remove()
    real = torch.cat([rl.obs, rl.actions, z[:, None].expand(-1, 12, -1)], -1)
    torch.testing.assert_close(seen[0], real)  # the first D call: real rows
    assert seen[0].shape[:2] == (3, 12) and all(x.shape[:2] == (3, 12) for x in seen)
    torch.testing.assert_close(g_in[0][..., :2], rl.obs)
    assert all(math.isfinite(float(v)) for v in logs.values())  # the NaN context is never read
    zg = z.clone().requires_grad_(True)
    loss, _ = reg.encoder_loss(sb(ctx, None, zg, rl))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(zg.grad).all() and zg.grad.abs().sum() > 0


def _task_dataset(seed=0, tasks=6, n=40):
    """Tasks whose state and reward scales differ, so which task gives the statistics shows."""
    rng = np.random.default_rng(seed)
    per = []
    for k in range(tasks):
        obs = rng.normal(size=(n, 2)) * (k + 1) + 3 * k
        per.append(
            {
                "obs": obs,
                "actions": rng.uniform(-1, 1, (n, 2)),
                "rewards": rng.normal(size=n) * (k + 1) + 10 * k,
                "next_obs": obs + rng.normal(size=(n, 2)),
                "dones": np.zeros(n),
            }
        )
    return TaskDataset(per, CPU)


def test_reference_stats_are_one_datasets():
    data = _task_dataset()
    stats = reference_stats(data, 1)
    obs, r = data.data["obs"][1], data.data["rewards"][1, :, 0]
    torch.testing.assert_close(stats.obs_std, obs.std(0, unbiased=False))
    torch.testing.assert_close(stats.reward_mean, r.mean())
    torch.testing.assert_close(stats.reward_std, r.std(unbiased=False))


@pytest.mark.parametrize("name", [*FAMILIES, "point-robot"])
def test_unicorn_statistics_come_from_task_19_in_every_family(name):
    """docs/paper.md, UNICORN: the authors' task id 19 (= 40 // 2 - 1), a training task in every
    family; Ant-Goal's training tasks are 0-19, so its middle one (9) would be another task."""
    family = FAMILIES[name]() if name in FAMILIES else PointRobot()
    assert reference_task_index(family) == 19
    assert 19 in [t.index for t in family.tasks("train")]


def test_a_run_normalises_with_task_19s_data(tmp_path, monkeypatch):
    import ertrl_bench.runner as runner
    from ertrl_bench.data import get_datasets
    from ertrl_bench.suite_loader import load_suite
    from tests.helpers import tiny_suite, write_suite

    seen = []

    def capture(method, problem):
        seen.append(problem.stats)
        raise KeyboardInterrupt  # only the Problem is of interest

    monkeypatch.setattr(runner, "build_agent", capture)
    (spec,) = load_suite(write_suite(tmp_path / "s.yaml", tiny_suite()))[1]
    with pytest.raises(KeyboardInterrupt):
        runner._run(spec, runner.RunDir(tmp_path / "results", spec), CPU)
    data = get_datasets(PointRobot(), spec.tier, spec.data)
    (task,) = [t for t in data.tasks if t.index == 19]
    arrays = data.task_arrays(task)
    expect = DataStats.of(torch.as_tensor(arrays["obs"]), torch.as_tensor(arrays["rewards"]))
    torch.testing.assert_close(seen[0].obs_std, expect.obs_std)
    torch.testing.assert_close(seen[0].reward_mean, expect.reward_mean)


def test_unicorn_targets_scaled_not_centred_and_on_the_rl_batch():
    g = torch.Generator().manual_seed(9)
    ctx, rl = _two_batches(g)
    stats = DataStats(
        obs_mean=torch.tensor([5.0, -5.0]),  # must not be used: s' - s is not centred
        obs_std=torch.tensor([2.0, 4.0]),
        reward_mean=torch.tensor(3.0),
        reward_std=torch.tensor(0.5),
    )
    reg = UnicornLoss(UnicornOptions(hidden=SMALL), problem(stats=stats))
    y = reg.normalised_targets(rl)
    d = rl.next_obs - rl.obs
    torch.testing.assert_close(y[..., 0], d[..., 0] / 2.0)
    torch.testing.assert_close(y[..., 1], d[..., 1] / 4.0)
    torch.testing.assert_close(y[..., 2], (rl.rewards[..., 0] - 3.0) / 0.5)
    z = torch.randn(3, LATENT, generator=g, requires_grad=True)
    loss, logs = reg.encoder_loss(sb(ctx, None, z, rl))
    assert torch.isfinite(loss)  # the NaN context is never read
    loss.backward()
    assert z.grad.abs().sum() > 0


def test_unicorn_decoder_loss_decreases():
    torch.manual_seed(0)
    data = make_data()
    enc = MLPEncoder(MLPEncoderOptions(hidden=SMALL), problem())  # (s, a, r): 5 features
    flat = {k: v.reshape(-1, v.shape[-1]) for k, v in data.items()}
    reg = UnicornLoss(
        UnicornOptions(hidden=SMALL),
        problem(stats=DataStats.of(flat["obs"], flat["rewards"])),
    )
    opt = torch.optim.Adam(list(enc.parameters()) + reg.joint_parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    mses = []
    for _ in range(300):
        b = torch.randint(0, B, (K,), generator=g)
        ctx = context(data, torch.arange(K), b, torch.randint(0, N, (K, C), generator=g))
        rl = context(data, torch.arange(K), b, torch.randint(0, N, (K, C), generator=g))
        z_i, z = enc(ctx.features(False))
        batch = sb(ctx, z_i, z, rl)
        reg.update(batch.detached())
        loss, logs = reg.encoder_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mses.append(float(logs["unicorn/mse"]))
    assert np.mean(mses[-20:]) < 0.3 * np.mean(mses[:20]), (mses[:3], mses[-3:])
    assert [p.data_ptr() for p in reg.joint_parameters()] == [
        p.data_ptr() for p in reg.decoder.parameters()
    ]


# --- defaults, registration ---------------------------------------------------------------------

# docs/paper.md's per-family values: (csro weight, gan weight, unicorn weight)
PAPER_WEIGHTS = {
    "cheetahvel": (10.0, 2.5, 1.5),
    "antdir": (50.0, 5.0, 1.5),
    "antgoal": (50.0, 5.0, 1.5),
    "humanoiddir": (50.0, 2.5, 1.5),
    "hoppermass": (25.0, 5.0, 15.0),
    "hopperfriction": (25.0, 5.0, 15.0),
    "walkermass": (25.0, 5.0, 7.0),
    "walkerfriction": (25.0, 5.0, 7.0),
}


def test_option_defaults_are_the_papers():
    assert CSROOptions().weight == 10.0 and CSROOptions().inputs == ("obs", "action")
    assert CSROOptions().hidden == (200, 200, 200) and CSROOptions().lr == 3e-4
    assert CSROOptions().model_loss_weight == 10.0
    o = GANEntropyOptions()
    assert o.weight == 5.0 and (o.noise_dim, o.gan_steps, o.lr) == (20, 5, 2e-4)
    assert (o.generator_hidden, o.discriminator_hidden) == ((200, 200, 200), (256, 256))
    assert UnicornOptions().weight == 1.5 and UnicornOptions().hidden == (256, 256)
    assert CSROLoss(CSROOptions(weight=1.0), problem()).weight == 1.0
    with pytest.raises(pydantic.ValidationError):
        CSROOptions(wieght=1.0)  # extra="forbid"


def test_registered_families_carry_the_papers_weights(tmp_path):
    """The weights a suite resolves for each family (option default < family default)."""
    from ertrl_bench.plugins import get_registry
    from ertrl_bench.suite_loader import load_suite
    from tests.helpers import write_suite

    envs = [n for n in get_registry().names("envs") if n.replace("-", "") in PAPER_WEIGHTS]
    assert len(envs) == 8
    suite = {"name": "w", "tier": "paper", "grid": {"envs": envs, "methods": ["csro", "ertrl"]}}
    suite["grid"]["methods"].append("unicorn")
    _, specs = load_suite(write_suite(tmp_path / "w.yaml", suite))
    got: dict = {}
    for spec in specs:
        for loss in spec.method.encoder_losses:
            got.setdefault(spec.env.type.replace("-", ""), {})[loss.type] = loss.params
    for env, (csro, gan, uni) in PAPER_WEIGHTS.items():
        assert got[env]["csro"]["weight"] == csro, env
        assert got[env]["gan_entropy"]["weight"] == gan, env
        assert got[env]["unicorn"]["weight"] == uni, env
        assert got[env]["csro"]["inputs"] == ["obs", "action"], env  # (s, a) in every family
        assert got[env]["dml"] == {"weight": 10.0, "eps": 1e-3}


def test_registered_and_named_methods():
    from ertrl_bench.config import MethodSpec
    from ertrl_bench.methods import METHODS
    from ertrl_bench.plugins import get_registry

    reg = get_registry()
    assert {"dml", "csro", "gan_entropy", "unicorn"} <= set(reg.names("encoder_losses"))
    for method, loss in [("csro", "csro"), ("ertrl", "gan_entropy"), ("unicorn", "unicorn")]:
        spec = MethodSpec.model_validate(METHODS[method])
        assert [c.type for c in spec.encoder_losses] == ["dml", loss]
        assert not spec.encoder_through_q
    pearl = MethodSpec.model_validate(METHODS["offline_pearl"])
    assert pearl.encoder_losses == [] and pearl.encoder_through_q
