"""Meta-World ML1 families: the grid and its splits, the envs, the scripted-expert datasets.

Each test builds a few Meta-World envs (tenths of a second each) or rolls out a few short
episodes; the file takes well under a minute on 2 cores.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from ertrl_bench_metaworld import plugin
from ertrl_bench_metaworld.names import ML1_ENVS, gym_id
from ertrl_bench_metaworld.plugin import FAMILIES, MetaWorldOptions
from gymnasium.utils.env_checker import check_env
from pydantic import ValidationError

from ertrl_bench.batch import TaskDataset
from ertrl_bench.config import EvalConfig, TrainConfig, resolve_schedule
from ertrl_bench.data import get_datasets
from ertrl_bench.data.policies import load_policy_file
from ertrl_bench.errors import DatasetError
from ertrl_bench.evaluation import evaluate_tasks
from ertrl_bench.methods import METHODS
from ertrl_bench.plugins import get_registry
from ertrl_bench.suite_loader import load_suite
from ertrl_bench.testing import check_env_family

MAIN = ("metaworld-reach", "metaworld-push", "metaworld-pick-place")


@pytest.fixture(scope="module")
def reach():
    return FAMILIES["metaworld-reach"]()


def test_env_list_is_the_installed_metaworlds():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    from metaworld.policies import ENV_POLICY_MAP

    assert sorted(ML1_ENVS) == sorted(e.removesuffix("-v3") for e in ALL_V3_ENVIRONMENTS)
    assert all(f"{e}-v3" in ENV_POLICY_MAP for e in ML1_ENVS)  # every family has an expert


@pytest.mark.parametrize("name", MAIN)
def test_family_passes_the_conformance_check(name):
    fam = check_env_family(FAMILIES[name], registered_name=name)
    assert fam.spaces() == (36, 4)


def test_splits_are_fixed_disjoint_and_ood_goals_lie_farther_out(reach):
    tasks = {s: reach.tasks(s) for s in ("train", "iid", "moderate", "extreme")}
    assert [len(tasks[s]) for s in tasks] == [30, 10, 10, 10]
    params = {s: {t.param for t in ts} for s, ts in tasks.items()}
    assert len(set().union(*params.values())) == 60  # 60 distinct goal variations
    box = reach._sampler.goal_space
    centre = (box.low + box.high) / 2

    def radius(split):
        return [float(np.linalg.norm(reach.goal(t) - centre)) for t in tasks[split]]

    assert max(radius("iid")) <= max(radius("train")) <= min(radius("moderate"))
    assert max(radius("moderate")) <= min(radius("extreme"))
    # the grid is fixed (GRID_SEED): a fresh family draws the same first goal
    assert FAMILIES["metaworld-reach"]().grid_param(0) == reach.grid_param(0)
    assert reach.grid_param(0) == pytest.approx(
        (0.071, 0.684, 0.02, -0.025, 0.833, 0.184), abs=1e-3
    )


def test_gym_make_gives_a_checked_env_of_the_grid_task(reach):
    env = gym.make(gym_id("reach"), task=3, horizon=20)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (36,) and obs.dtype == np.float32
    steps = 0
    while True:
        *_, truncated, info = env.step(env.action_space.sample())
        steps += 1
        if truncated:
            break
    assert steps == 20 and "success" in info
    with pytest.raises(ValueError, match="0..49"):
        gym.make(gym_id("reach"), task=50)


def test_the_expert_succeeds_and_noise_degrades_its_return(reach):
    task = reach.tasks("extreme")[-1]  # the farthest goal
    returns, success = [], []
    for sigma in (0.0, 3.0):
        env, rng = reach.make(task), np.random.default_rng(0)
        obs, _ = env.reset(seed=0)
        total, ok = 0.0, False
        for _ in range(reach.horizon):
            a = reach.expert_actions([task], obs[None])[0]
            a = np.clip(a + sigma * rng.standard_normal(4), -1, 1)
            obs, r, _, _, info = env.step(a)
            total, ok = total + r, ok or info["success"]
        returns.append(total)
        success.append(ok)
    assert success[0] and returns[0] > returns[1]


def test_scripted_datasets_have_the_cache_format_and_are_reproducible(tmp_path, monkeypatch):
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path / "a"))
    fam = FAMILIES["metaworld-reach"](MetaWorldOptions(horizon=30, noise=(0.1, 2.0)))
    fd = get_datasets(fam, "smoke", tasks=[0, 45])
    a, meta = fd.arrays["task-045"], fd.meta["task-045"]
    assert a["obs"].shape == (60, 36) and sorted(set(a["checkpoint"])) == [0, 1]
    assert sorted(set(a["trajectory"])) == [0, 1] and a["timeouts"].sum() == 2
    assert meta["behavior"] == "scripted" and meta["noise_levels"] == [0.1, 2.0]
    built_with = meta["built_with"]  # what the bytes depend on beyond the key (docs/data.md)
    assert built_with["mujoco"] == "3.3.0" and list(built_with["family_package"]) == [
        "ertrl-bench-metaworld"
    ]
    assert meta["checkpoint_returns"]["0"] > meta["checkpoint_returns"]["1"]  # expert > noisy
    # success per episode (Meta-World's info["success"] at any step); 30 steps are too few
    # for the expert (it first succeeds at steps 33-82): see the evaluation test below
    assert meta["episode_success"] == [False, False]
    assert meta["checkpoint_success"] == {"0": 0.0, "1": 0.0}
    assert fd.r_min(fd.tasks[1]) < fd.r_max(fd.tasks[1])
    with pytest.raises(DatasetError, match="scripted experts"):
        load_policy_file(Path(fd.path) / "task-045.policy.pt")
    # the same task built alone, in another cache, has the same bytes
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path / "b"))
    alone = get_datasets(fam, "smoke", tasks=[45])
    assert Path(alone.path).name == Path(fd.path).name  # same cache key

    def digest(path):
        return hashlib.sha256((Path(path) / "task-045.npz").read_bytes()).hexdigest()

    assert digest(alone.path) == digest(fd.path)


def test_options_are_strict():
    with pytest.raises(ValidationError):
        MetaWorldOptions(horizn=10)
    with pytest.raises(ValidationError):
        MetaWorldOptions(horizon=501)  # Meta-World refuses to step past 500


def test_registered_under_their_own_names(tmp_path, register_test_plugin):
    register_test_plugin(plugin, "metaworld")
    names = get_registry().names("envs")
    assert {f"metaworld-{e}" for e in ML1_ENVS} <= set(names)
    entry = get_registry().get("envs", "metaworld-pick-place")
    assert entry.factory(entry.options()).name == "metaworld-pick-place"
    suite = {"name": "mw", "grid": {"envs": list(MAIN), "methods": ["focal"]}}
    path = tmp_path / "mw.yaml"
    path.write_text(yaml.safe_dump(suite))
    specs = load_suite(path)[1]
    assert [s.env.type for s in specs] == list(MAIN)
    tiny = Path(__file__).parents[1] / "suites" / "ml1-reach-tiny.yaml"
    assert sorted(s.method.name for s in load_suite(tiny)[1]) == ["ertrl", "focal"]


def test_the_ml1_study_suite_validates(register_test_plugin):
    """suites/metaworld-ml1.yaml: the five built-in methods, each on the IQL backbone (named
    ``<method>-iql``, its encoder losses the built-in's) x reach, push, pick-place x its seeds,
    every run on the tier-small scripted-expert data."""
    register_test_plugin(plugin, "metaworld")
    suite, specs = load_suite("metaworld-ml1")  # by name: the plugin registers its suites
    builtins = set(METHODS)
    assert builtins == set(get_registry().names("methods"))  # the five built-ins
    seeds = suite.grid.seeds
    assert len(seeds) == 5
    assert {(s.env.type, s.method.name) for s in specs} == {
        (e, f"{m}-iql") for e in MAIN for m in builtins
    }
    assert len(specs) == 3 * 5 * len(seeds) and {s.tier for s in specs} == {"small"}
    for spec in specs:
        builtin = METHODS[spec.method.name.removesuffix("-iql")]
        assert spec.method.backbone.type == "iql"
        assert [c.type for c in spec.method.encoder_losses] == builtin["encoder_losses"]
        assert spec.method.encoder_through_q == builtin.get("encoder_through_q", False)


def test_every_suite_of_the_package_is_registered_by_name_and_ships_with_it(register_test_plugin):
    """The suites live in the package (package data: usable by name after a plain ``pip
    install``); ``suites/`` beside pyproject.toml is a link to them, for the paths in the docs."""
    register_test_plugin(plugin, "metaworld")
    shipped = Path(plugin.__file__).parent / "suites"
    registered = get_registry().entries["suites"]
    ours = {n: e.factory for n, e in registered.items() if e.plugin == "metaworld"}
    assert ours == {p.stem: p for p in shipped.glob("*.yaml")}
    assert "metaworld-ml1" in ours and "smoke" in registered  # beside the built-ins
    root = Path(__file__).parents[1]
    assert (root / "suites").resolve() == shipped.resolve()
    assert '"suites/*.yaml"' in (root / "pyproject.toml").read_text()


def test_the_iql_convergence_runs_are_the_ml1_studys_own(register_test_plugin):
    """Every run of suites/converge-ml1-iql.yaml computes what the ML1 study's run of the same
    family, method and seed computes (equal computation keys), so the study's
    ``--reuse results/converge-ml1-iql`` copies them instead of training them again."""
    register_test_plugin(plugin, "metaworld")
    suites = Path(__file__).parents[1] / "suites"
    study = {
        (s.env.type, s.method.name, s.seed): s.computation_key()
        for s in load_suite(suites / "metaworld-ml1.yaml")[1]
    }
    specs = load_suite(suites / "converge-ml1-iql.yaml")[1]
    assert len(specs) == 18
    for spec in specs:
        assert spec.computation_key() == study[(spec.env.type, spec.method.name, spec.seed)]


def test_the_iql_convergence_suite_is_converge_ml1_on_iql(register_test_plugin):
    """suites/converge-ml1-iql.yaml: every run is converge-ml1's run of the same family, method
    and seed but for its backbone (IQL) and its name (``<method>-iql``)."""
    register_test_plugin(plugin, "metaworld")
    suites = Path(__file__).parents[1] / "suites"
    brac = {
        (s.env.type, s.method.name, s.seed): s.model_dump()
        for s in load_suite(suites / "converge-ml1.yaml")[1]
    }
    specs = load_suite(suites / "converge-ml1-iql.yaml")[1]
    assert len(specs) == len(brac) == 18
    for spec in specs:
        ours = spec.model_dump()
        method = spec.method.name.removesuffix("-iql")
        theirs = brac[(spec.env.type, method, spec.seed)]
        assert ours["method"]["backbone"]["type"] == "iql"
        assert "backbones/iql" in ours["versions"]
        for d in (ours, theirs):
            d.pop("suite")
            d.pop("versions")
            d["method"].pop("name")
            d["method"].pop("backbone")
        assert ours == theirs


def test_the_long_iql_check_extends_the_reach_runs(register_test_plugin):
    """suites/converge-ml1-iql-long.yaml: converge-ml1-iql's reach runs but for the budget
    (19.2k steps, twice theirs), so each extends its 9.6k run (equal keys without the budget)."""
    register_test_plugin(plugin, "metaworld")
    suites = Path(__file__).parents[1] / "suites"
    short = {
        (s.method.name, s.seed): s
        for s in load_suite(suites / "converge-ml1-iql.yaml")[1]
        if s.env.type == "metaworld-reach"
    }
    specs = load_suite(suites / "converge-ml1-iql-long.yaml")[1]
    assert {(s.method.name, s.seed) for s in specs} == set(short)
    for spec in specs:
        base = short[(spec.method.name, spec.seed)]
        assert spec.computation_key(budget=False) == base.computation_key(budget=False)
        assert spec.train.iterations == 2 * base.train.iterations


def test_the_long_reach_study_extends_the_ml1_studys_reach_runs(register_test_plugin):
    """suites/metaworld-ml1-reach-long.yaml: metaworld-ml1's reach runs but for the budget
    (19.2k steps), so each extends its 9.6k run; its FOCAL and ER-TRL seeds 0-2 are
    converge-ml1-iql-long's computations, so ``--reuse`` copies those."""
    register_test_plugin(plugin, "metaworld")
    short = {
        (s.method.name, s.seed): s
        for s in load_suite("metaworld-ml1")[1]
        if s.env.type == "metaworld-reach"
    }
    specs = load_suite("metaworld-ml1-reach-long")[1]
    assert {(s.method.name, s.seed) for s in specs} == set(short) and len(specs) == 25
    for spec in specs:
        base = short[(spec.method.name, spec.seed)]
        assert spec.computation_key(budget=False) == base.computation_key(budget=False)
        assert spec.train.iterations == 2 * base.train.iterations
    done = {
        (s.method.name, s.seed): s.computation_key() for s in load_suite("converge-ml1-iql-long")[1]
    }
    ours = {(s.method.name, s.seed): s.computation_key() for s in specs}
    assert done and all(ours[k] == key for k, key in done.items())


def test_the_brac_diagnosis_varies_one_thing_a_run(register_test_plugin):
    """suites/ml1-brac-diagnosis.yaml: one FOCAL seed on reach per variant; each run is the
    authors' BRAC run (``focal``) but for its name and the one thing the variant says (the
    data's quality, BRAC options, or the backbone), so its log shows what that change does
    (results/ml1-brac-diagnosis/NOTES.md)."""
    register_test_plugin(plugin, "metaworld")
    path = Path(__file__).parents[1] / "suites" / "ml1-brac-diagnosis.yaml"
    specs = {s.method.name: s.model_dump() for s in load_suite(path)[1]}
    base = specs.pop("focal")
    brac = base["method"]["backbone"]["params"]
    assert base["data"] == {} and (brac["reward_scale"], brac["log_std_max"]) == (5.0, 0.0)
    options = {  # variant -> the BRAC options it changes
        "focal-lsb": {"log_std_init_bias": -1.0},
        "focal-rs05": {"reward_scale": 0.5},
        "focal-rs01": {"reward_scale": 0.1},
        "focal-rs20": {"reward_scale": 20.0},
        "focal-rs50": {"reward_scale": 50.0},
        "focal-rs05-lsb": {"reward_scale": 0.5, "log_std_init_bias": -1.0},
        "focal-gp": {"penalty": "gradient"},
        "focal-lsmax2": {"log_std_max": 2.0},
    }
    assert set(specs) == {*options, "focal-expert", "focal-iql"}
    for name, spec in specs.items():
        expected = {**base, "method": {**base["method"], "name": name}}
        if name == "focal-expert":
            expected["data"] = {"quality": "expert"}
        elif name == "focal-iql":
            assert spec["method"]["backbone"]["type"] == "iql"
            expected["method"]["backbone"] = spec["method"]["backbone"]
            expected["versions"] = spec["versions"]  # names the backbone: iql, not brac
            assert "backbones/iql" in spec["versions"]
        else:
            params = {**brac, **options[name]}
            expected["method"]["backbone"] = {"type": "brac", "params": params}
        assert spec == expected, name


def test_the_builtin_mujoco_families_pass_on_metaworlds_mujoco():
    """Meta-World pins ``mujoco==3.3.0``; ertrl-bench asks ``mujoco>=3.1``: in this venv the
    eight built-in families run on Meta-World's MuJoCo, and must still pass."""
    import mujoco

    from ertrl_bench.envs.mujoco import FAMILIES as MUJOCO_FAMILIES

    assert mujoco.__version__.startswith("3.3.")  # what metaworld 3.1 installs
    for name in MUJOCO_FAMILIES:
        check_env_family(name, registered_name=name)


class _ExpertAgent:
    """An evaluation agent that plays Meta-World's expert (it is told the tasks, in the
    evaluation's env order) or, with ``expert=False``, stands still; z stays 0."""

    def __init__(self, family, tasks, expert: bool):
        self.problem = SimpleNamespace(device=torch.device("cpu"), latent_dim=2)
        self.backbone, self.family, self.tasks, self.expert = self, family, tasks, expert

    def act(self, obs, z, deterministic=True):
        if not self.expert:
            return torch.zeros(len(obs), 4)
        assert len(obs) == len(self.tasks)  # every run acts, idle ones included
        return torch.as_tensor(self.family.expert_actions(self.tasks, obs.numpy()))

    def infer(self, ctx):
        return None, torch.zeros(ctx.obs.shape[0], 2)


def test_an_evaluation_records_metaworlds_success(tmp_path, monkeypatch):
    """Success = Meta-World's info["success"] at any step of the scored episode: the expert
    succeeds on every task and protocol, standing still does not."""
    monkeypatch.setenv("ERTRL_BENCH_DATA", str(tmp_path))
    fam = FAMILIES["metaworld-reach"](MetaWorldOptions(horizon=100, noise=(0.1,)))
    data = get_datasets(fam, "smoke", tasks=[0, 45])
    tasks = data.tasks
    assert [data.meta[t.key]["episode_success"] for t in tasks] == [[True], [True]]
    rows = {t.key: i for i, t in enumerate(tasks)}
    task_data = TaskDataset([data.task_arrays(t) for t in tasks], torch.device("cpu"))
    _, cfg = resolve_schedule(
        TrainConfig(),
        EvalConfig(
            transitions=200, runs_per_task=1, online_min_transitions=100,
            non_prior_min_transitions=100,
        ),  # two 100-step episodes per protocol, the second scored
        fam.schedule_defaults(),
        False,
    )  # fmt: skip
    for expert, rate in ((True, 1.0), (False, 0.0)):
        agent = _ExpertAgent(fam, tasks, expert)
        scores, _ = evaluate_tasks(agent, data, task_data, rows, tasks, cfg)
        for protocol in cfg.protocols:
            assert [scores[protocol][t.key]["success"] for t in tasks] == [rate, rate], protocol
