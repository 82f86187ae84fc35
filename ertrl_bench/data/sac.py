"""Batched SAC: one behavior policy per task, all tasks trained as one computation.

The task axis is an ensemble axis: every network has weights ``[tasks, in, out]``
(``EnsembleLinear``), the replay buffer is ``[tasks, capacity, ...]`` and every task's env is
stepped in one ``BatchEnv``. The loss is the *sum* over tasks of each task's mean loss, so each
task's gradient is exactly its own and Adam (element-wise) keeps the agents independent.
Hyper-parameters: docs/paper.md's behavior policy (see ``DataTier``).

As the authors' behavior SAC (their data collection runs denisyarats/pytorch_sac, whose config
``cfgs/data_collection.yaml`` sets the values below):

- the policy's log-std is tanh-rescaled into [-5, 2] (``LOG_STD_BOUNDS``): ``log_std = -5 +
  0.5 * (2 + 5) * (tanh(x) + 1)``, not clamped;
- the critic's target network is soft-updated every ``TARGET_UPDATE_PERIOD`` = 2 environment
  steps (counted from 0, as their ``step % critic_target_update_frequency``), the actor every step;
- the temperature loss is taken on alpha itself, ``mean(alpha * (-log pi - target_entropy))``
  (its gradient is alpha times log alpha's), the parameter still being log alpha;
- the networks start as pytorch_sac's ``weight_init``: orthogonal weights (gain 1), zero biases
  (``ertrl_bench.nn.orthogonal_init_``), each task's from its own random stream.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from rich.markup import escape
from torch import nn

from ertrl_bench.data.rng import TaskStreams, env_seed, reset_with_seeds
from ertrl_bench.data.store import atomic_write_bytes, atomic_write_json
from ertrl_bench.data.tiers import DataTier
from ertrl_bench.envs.base import BatchEnv
from ertrl_bench.nn import ensemble_mlp, soft_update, tanh_gaussian_sample
from ertrl_bench.progress import bar, console
from ertrl_bench.stopping import StopAtStepBoundary

LOG_STD_BOUNDS = (-5.0, 2.0)  # the authors' actor_cfg.log_std_bounds
TARGET_UPDATE_PERIOD = 2  # the authors' critic_target_update_frequency


def _tanh_gaussian_with_noise(mean, log_std, noise):
    """``tanh_gaussian_sample`` with the standard normals given (drawn from per-task streams)."""
    pre = mean + log_std.exp() * noise
    normal_logp = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    correction = (2 * (math.log(2) - pre - nn.functional.softplus(-2 * pre))).sum(-1)
    return torch.tanh(pre), normal_logp - correction


class EnsembleActor(nn.Module):
    """Tanh-Gaussian policy per task: ``obs [T, B, ds] -> actions [T, B, da]``."""

    def __init__(self, tasks: int, obs_dim: int, act_dim: int, hidden):
        super().__init__()
        # pytorch_sac's init is drawn per task by TaskStreams.init_ensemble (BatchedSAC)
        self.net = ensemble_mlp(tasks, obs_dim, hidden, 2 * act_dim, init="torch")
        self.act_dim = act_dim

    def mean_log_std(self, obs) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian's mean and its log-std, tanh-rescaled into ``LOG_STD_BOUNDS``."""
        mean, raw = self.net(obs).chunk(2, dim=-1)
        lo, hi = LOG_STD_BOUNDS
        return mean, lo + 0.5 * (hi - lo) * (torch.tanh(raw) + 1)

    def forward(self, obs, deterministic: bool = False, noise: torch.Tensor | None = None):
        """``noise``: the standard normals to use (``[T, B, da]``); None draws from torch's RNG."""
        mean, log_std = self.mean_log_std(obs)
        if noise is not None and not deterministic:
            return _tanh_gaussian_with_noise(mean, log_std, noise)
        return tanh_gaussian_sample(mean, log_std, deterministic)


class EnsembleCritic(nn.Module):
    def __init__(self, tasks: int, obs_dim: int, act_dim: int, hidden):
        super().__init__()
        self.q1 = ensemble_mlp(tasks, obs_dim + act_dim, hidden, 1, init="torch")
        self.q2 = ensemble_mlp(tasks, obs_dim + act_dim, hidden, 1, init="torch")

    def forward(self, obs, act):
        x = torch.cat([obs, act], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class TaskReplay:
    """``[tasks, capacity, ...]`` ring buffer; all tasks advance in lock-step."""

    def __init__(self, tasks, capacity, obs_dim, act_dim, device):
        self.obs = torch.zeros(tasks, capacity, obs_dim, device=device)
        self.act = torch.zeros(tasks, capacity, act_dim, device=device)
        self.rew = torch.zeros(tasks, capacity, device=device)
        self.next_obs = torch.zeros(tasks, capacity, obs_dim, device=device)
        self.done = torch.zeros(tasks, capacity, device=device)
        self.capacity, self.ptr, self.size = capacity, 0, 0
        self.rows = torch.arange(tasks, device=device)[:, None]

    def add(self, obs, act, rew, next_obs, done):
        i = self.ptr
        self.obs[:, i], self.act[:, i], self.rew[:, i] = obs, act, rew
        self.next_obs[:, i], self.done[:, i] = next_obs, done
        self.ptr = (self.ptr + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch: int, idx: torch.Tensor | None = None):
        """``idx [tasks, batch]``: the rows to take (per-task streams); None draws them."""
        if idx is None:
            idx = torch.randint(0, self.size, (self.obs.shape[0], batch), device=self.obs.device)
        r = self.rows
        return (
            self.obs[r, idx],
            self.act[r, idx],
            self.rew[r, idx],
            self.next_obs[r, idx],
            self.done[r, idx],
        )

    _FIELDS = ("obs", "act", "rew", "next_obs", "done")

    def state_dict(self) -> dict:
        return {**{f: getattr(self, f) for f in self._FIELDS}, "ptr": self.ptr, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        for f in self._FIELDS:
            mine, saved = getattr(self, f), state[f]
            if saved.device == mine.device and saved.shape[0] == mine.shape[0]:
                setattr(self, f, saved)  # no second copy of a buffer that can be 100+ GB
            else:
                mine.copy_(saved)
        self.ptr, self.size = state["ptr"], state["size"]


class BatchedSAC:
    """SAC for T tasks at once (docs/paper.md's behavior policies; learned temperature per task)."""

    def __init__(
        self,
        tasks: int,
        obs_dim: int,
        act_dim: int,
        cfg: DataTier,
        device,
        streams: TaskStreams | None = None,
        cuda_graph: bool = False,
    ):
        """``streams``: per-task random streams for init, minibatches and noise (None: torch's
        global RNG, tasks then share one stream). ``cuda_graph``: on a CUDA device, the update
        after its draws is replayed as one CUDA graph (``GraphedSACUpdate``; needs
        ``streams``); ignored elsewhere."""
        if cuda_graph and streams is None:
            raise ValueError("a graphed SAC update needs per-task streams (its draws)")
        device = torch.device(device)
        self.cfg, self.device, self.tasks, self.streams = cfg, device, tasks, streams
        self.act_dim = act_dim
        self.actor = EnsembleActor(tasks, obs_dim, act_dim, cfg.sac_hidden).to(device)
        self.critic = EnsembleCritic(tasks, obs_dim, act_dim, cfg.sac_hidden).to(device)
        if streams is not None:
            streams.init_ensemble(self.actor)
            streams.init_ensemble(self.critic)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.full(
            (tasks,), math.log(cfg.init_temperature), device=device, requires_grad=True
        )
        self.target_entropy = -float(act_dim)
        # capturable: Adam keeps its step count on the device, as a CUDA graph needs
        capturable = cuda_graph and self.device.type == "cuda"
        adam = dict(lr=cfg.sac_lr, capturable=capturable)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), **adam)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), **adam)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], **adam)
        self.graph = GraphedSACUpdate(self) if capturable else None

    _MODULES = ("actor", "critic", "critic_target", "actor_opt", "critic_opt", "alpha_opt")

    def state_dict(self) -> dict:
        state = {name: getattr(self, name).state_dict() for name in self._MODULES}
        return {**state, "log_alpha": self.log_alpha.detach().clone()}

    def load_state_dict(self, state: dict) -> None:
        for name in self._MODULES:
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])

    def update(self, replay: TaskReplay, step: int) -> dict[str, torch.Tensor]:
        """One SAC update; ``step``: the environment step (from 0), which decides whether the
        critic's target moves (every ``TARGET_UPDATE_PERIOD``, as the authors). The random
        draws come first, from the per-task streams on the device; the rest
        (``update_tensors``) is the same work every step, replayed as one CUDA graph with
        ``cuda_graph``. The losses returned are overwritten by the next graphed update."""
        draws = self.draws(replay)
        if self.graph is not None:
            out = self.graph(replay, *draws)
        else:
            out = self.update_tensors(replay, *draws)
        if step % TARGET_UPDATE_PERIOD == 0:
            soft_update(self.critic_target, self.critic, self.cfg.tau)
        return out

    def draws(self, replay: TaskReplay):
        """``(rows [T, B], noise [T, B, da], noise [T, B, da])`` of one update, each task's from
        its own stream (None each without ``streams``: torch's RNG, drawn in the update)."""
        st, batch = self.streams, self.cfg.sac_batch
        if st is None:
            return None, None, None
        return (
            st.randint(replay.size, batch),
            st.normal(batch, self.act_dim),
            st.normal(batch, self.act_dim),
        )

    def update_tensors(self, replay: TaskReplay, idx, noise1, noise2) -> dict[str, torch.Tensor]:
        """The update given its draws: no host synchronisation, the same kernels every step.
        The networks' forward passes run under ``cfg.sac_autocast`` (losses in float32)."""
        cfg = self.cfg
        obs, act, rew, next_obs, done = replay.sample(cfg.sac_batch, idx)
        alpha = self.log_alpha.exp().detach()[:, None]
        with torch.no_grad(), self.autocast():
            next_a, next_logp = self.actor(next_obs, noise=noise1)
            tq1, tq2 = self.critic_target(next_obs, next_a)
            soft_q = torch.min(tq1, tq2).float() - alpha * next_logp.float()
            target = rew + cfg.discount * (1 - done) * soft_q
        with self.autocast():
            q1, q2 = self.critic(obs, act)
        q1, q2 = q1.float(), q2.float()
        critic_loss = ((q1 - target).pow(2).mean(1) + (q2 - target).pow(2).mean(1)).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        with self.autocast():
            new_a, logp = self.actor(obs, noise=noise2)
            self.critic.requires_grad_(False)
            nq1, nq2 = self.critic(obs, new_a)
            self.critic.requires_grad_(True)
        logp = logp.float()
        actor_loss = (alpha * logp - torch.min(nq1, nq2).float()).mean(1).sum()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()

        alpha_loss = temperature_loss(self.log_alpha, logp.detach(), self.target_entropy)
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach()}

    def autocast(self):
        """``cfg.sac_autocast``'s context (bf16 matmuls), or one that does nothing. No autocast
        cache: a CUDA graph must not keep casts of one step's weights for the next."""
        on = self.cfg.sac_autocast == "bf16"
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=on, cache_enabled=False
        )

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """obs ``[T, ds]`` or ``[T, K, ds]`` (K envs per task)."""
        x = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        squeeze = x.dim() == 2
        if squeeze:
            x = x[:, None]
        st = self.streams
        noise = None if st is None or deterministic else st.normal(x.shape[1], self.act_dim)
        a, _ = self.actor(x, deterministic, noise)
        a = a.squeeze(1) if squeeze else a
        return a.cpu().numpy()


class GraphedSACUpdate:
    """``BatchedSAC.update_tensors`` as one CUDA graph: the draws are copied into fixed input
    tensors, then one replay launches the whole update (the minibatch gather, the three losses,
    their backward passes and Adam steps). Why: at the paper's sizes the eager update is bound
    by launching its many kernels (benchmarks/measured/h200-2026-11-26/NOTES.md). The first
    ``WARMUP_STEPS`` calls run eagerly on a side stream (optimizer state, cuBLAS handles), the
    next one captures. The replay buffer's tensors must stay where they are once captured
    (``TaskReplay.load_state_dict`` runs before the first update)."""

    def __init__(self, sac: BatchedSAC):
        self.sac = sac
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: tuple[torch.Tensor, ...] | None = None
        self.static: dict[str, torch.Tensor] | None = None
        self.calls = 0
        self.side = torch.cuda.Stream(device=sac.device)

    def __call__(self, replay: TaskReplay, idx, noise1, noise2) -> dict[str, torch.Tensor]:
        from ertrl_bench.cuda_graph import WARMUP_STEPS

        self.calls += 1
        if self.graph is None and self.calls <= WARMUP_STEPS:
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                out = self.sac.update_tensors(replay, idx, noise1, noise2)
            torch.cuda.current_stream().wait_stream(self.side)
            return out
        if self.graph is None:
            self.inputs = (idx.clone(), noise1.clone(), noise2.clone())
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.static = self.sac.update_tensors(replay, *self.inputs)
            self.graph = graph
        for mine, new in zip(self.inputs, (idx, noise1, noise2), strict=True):
            mine.copy_(new)
        self.graph.replay()
        return self.static


def temperature_loss(
    log_alpha: torch.Tensor, logp: torch.Tensor, target_entropy: float
) -> torch.Tensor:
    """The authors' (pytorch_sac's) temperature loss, on alpha itself: per task
    ``mean(alpha * (-log pi - target_entropy))``, summed over tasks. ``log_alpha [T]``,
    ``logp [T, B]`` (detached)."""
    return (log_alpha.exp() * (-logp - target_entropy).mean(1)).sum()


class TrainingState:
    """An interrupted behavior-policy build's state, so a rerun continues where it stopped.

    One ``torch.save`` file beside the datasets, written atomically every ``every_s`` seconds, at
    a Ctrl-C / SIGTERM stop (``stopping``) and once more when training ends (so an interruption
    during collection or while the finished tasks are written does not retrain). It holds the SAC
    networks and optimisers, the replay buffers, the checkpoints taken so far, the envs' state
    and every per-task RNG, so the resumed build equals an uninterrupted one bit for bit
    (tests/test_build_resume.py). A small JSON sidecar (``<file>.json``) names the tasks and
    step, so a build can see which tasks a state covers without loading it. It is pickled: it is our own cache file, never load one from
    elsewhere. ``fingerprint`` (the tasks trained) guards against a stale file.
    """

    def __init__(self, path: Path, fingerprint: str, every_s: float = 600.0):
        self.path, self.fingerprint, self.every_s = Path(path), fingerprint, every_s

    @property
    def sidecar(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as exc:  # truncated / corrupted: start over, say so
            console.print(
                f"[yellow]ignoring unreadable training state {escape(f'{self.path}: {exc}')}"
            )
            return None
        if state.get("fingerprint") != self.fingerprint:
            console.print(
                f"[yellow]ignoring training state {escape(str(self.path))}: other tasks or settings"
            )
            return None
        return state

    def save(self, state: dict) -> None:
        atomic_write_bytes(
            self.path, lambda f: torch.save({**state, "fingerprint": self.fingerprint}, f)
        )
        info = {"fingerprint": self.fingerprint, "step": state["step"], "tasks": state["tasks"]}
        atomic_write_json(self.sidecar, info)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.sidecar.unlink(missing_ok=True)


def saved_state_info(path: Path) -> dict | None:
    """The sidecar of a saved training state (``{"tasks": [index...], "step"}``), if any."""
    path = Path(path)
    side = path.with_name(path.name + ".json")
    if not path.exists() or not side.exists():
        return None
    try:
        info = json.loads(side.read_text())
        return info if isinstance(info, dict) and isinstance(info.get("tasks"), list) else None
    except (OSError, ValueError):
        return None


def _check_build_threads(label: str, started: int | None, step: int) -> int | None:
    """Warn when a build resumes with another torch thread count than it started with: on CPU
    the bytes depend on the count (docs/data.md, "Same key, same bits?"), so the data will
    match an uninterrupted build's at neither count. ``started`` is None for a state saved
    before the count was kept (unknown: said once). Returns ``started`` (what saves keep)."""
    now = torch.get_num_threads()
    if started is None:
        message = (
            f"note: {label}behavior policies resume at step {step} from a training state that"
            f" does not record its torch thread count; now {now}. If it differs, the data will"
            " differ from an uninterrupted build's (docs/data.md, 'Same key, same bits?')."
        )
    elif started != now:
        message = (
            f"warning: {label}behavior policies started with {started} torch thread(s) and resume"
            f" at step {step} with {now}: the data will differ from an uninterrupted build's."
            f" To avoid it, resume with the same count: ertrl-bench datasets build ..."
            f" --threads {started}"
        )
    else:
        return started
    console.print(message, markup=False, highlight=False)
    return started


def train_behavior_policies(
    env: BatchEnv,
    obs_dim: int,
    act_dim: int,
    cfg: DataTier,
    device,
    label: str = "",
    resume: TrainingState | None = None,
    task_indices: list[int] | None = None,
    cuda_graph: bool = False,
) -> tuple[BatchedSAC, dict[int, dict], dict]:
    """Train one SAC per env of ``env`` (one env per task); snapshot the actor at checkpoints.

    ``task_indices`` (``Task.index`` of each env; default ``0..E-1``) seed each task's own random
    streams (``ertrl_bench.data.rng``), so a task trains the same whatever else is in ``env``.
    With ``resume``, training state is saved periodically and a saved state is continued.
    ``cuda_graph``: on a CUDA device, each update replayed as one graph (``GraphedSACUpdate``).
    Returns the agent, ``{checkpoint_step: actor_state_dict}`` and timing stats.
    """
    tasks = env.num_envs
    device = torch.device(device)
    indices = list(range(tasks)) if task_indices is None else list(task_indices)
    if len(indices) != tasks:
        raise ValueError(f"{len(indices)} task indices for {tasks} envs")
    streams = TaskStreams(cfg.seed, indices, device)
    sac = BatchedSAC(tasks, obs_dim, act_dim, cfg, device, streams, cuda_graph)
    saved = resume.load() if resume is not None else None
    capacity = min(cfg.buffer_size, cfg.sac_steps)
    if saved is not None and saved["replay"]["obs"].device == device:
        replay = TaskReplay(tasks, 0, obs_dim, act_dim, device)  # the saved buffers, no 2nd copy
        replay.capacity = capacity
    else:
        replay = TaskReplay(tasks, capacity, obs_dim, act_dim, device)
    snapshots: dict[int, dict] = {}
    obs = reset_with_seeds(env, [env_seed(cfg.seed, i) for i in indices])
    wanted = set(cfg.checkpoints)
    done_steps, elapsed_before = 0, 0.0
    threads: int | None = torch.get_num_threads()  # the count training started with (kept)
    if saved is not None:
        threads = _check_build_threads(label, saved.get("torch_threads"), saved["step"])
        sac.load_state_dict(saved["sac"])
        replay.load_state_dict(saved["replay"])
        snapshots = {
            k: {n: v.to(device) for n, v in sd.items()} for k, sd in saved["snapshots"].items()
        }
        env.set_state(saved["env"])
        obs = saved["obs"]
        streams.set_state(saved["rng"])
        done_steps, elapsed_before = saved["step"], saved["elapsed_s"]
        del saved
        console.print(
            f"resuming {label}behavior policies at step {done_steps} ({resume.path})", markup=False
        )

    t0 = time.perf_counter()

    def save(step: int) -> None:
        nonlocal resume
        try:
            env_state = env.get_state()
        except NotImplementedError as exc:
            console.print(
                f"[yellow]not saving training state (an interruption restarts): {escape(str(exc))}"
            )
            resume = None
            return
        resume.save(
            {
                "step": step,
                "tasks": indices,
                "elapsed_s": elapsed_before + time.perf_counter() - t0,
                "sac": sac.state_dict(),
                "replay": replay.state_dict(),
                "snapshots": snapshots,
                "env": env_state,
                "obs": obs,
                "rng": streams.state(),
                "torch_threads": threads,
            }
        )

    last_save = time.monotonic()
    reported = done_steps
    with (
        StopAtStepBoundary() as stop,
        bar(
            f"SAC behavior policies {label}({tasks} tasks)", cfg.sac_steps, done=done_steps
        ) as pbar,
    ):
        for step in range(done_steps + 1, cfg.sac_steps + 1):
            if step <= cfg.random_steps:
                action = streams.uniform_np(-1, 1, act_dim)
            else:
                action = sac.act(obs)
            res = env.step(action)
            replay.add(
                torch.as_tensor(obs, device=device),
                torch.as_tensor(action, device=device),
                torch.as_tensor(res.reward, device=device),
                torch.as_tensor(res.next_obs, device=device),
                torch.as_tensor(res.terminated, dtype=torch.float32, device=device),
            )
            finished = res.terminated | res.truncated
            obs = env.reset(mask=finished) if finished.any() else res.next_obs
            if step > cfg.random_steps:
                sac.update(replay, step - 1)  # the authors count env steps from 0
            if step in wanted:
                snapshots[step] = copy.deepcopy(sac.actor.state_dict())
            if step % 100 == 0 or step == cfg.sac_steps:
                pbar.advance(step - reported)
                reported = step
            # Ctrl-C / SIGTERM (stop.requested): stop after saving this step
            if resume is not None and (
                stop.requested
                or step == cfg.sac_steps
                or time.monotonic() - last_save >= resume.every_s
            ):
                save(step)
                last_save = time.monotonic()
            if stop.requested:
                raise KeyboardInterrupt
    since_resume = time.perf_counter() - t0
    trained = tasks * (cfg.sac_steps - done_steps)
    stats = {
        "sac_wall_s": elapsed_before + since_resume,  # every session's SAC time, for the record
        "sac_wall_since_resume_s": since_resume,  # this call's: the one a rate may divide by
        "sac_env_steps_per_s": trained / max(since_resume, 1e-9),
        "resumed_at_step": done_steps,
        "torch_threads": threads,  # the count it started with
        "torch_threads_now": torch.get_num_threads(),  # differs after a mismatched resume
    }
    return sac, snapshots, stats
