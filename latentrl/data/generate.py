"""Generate episodes from a Gymnasium env and a behaviour policy, in worker processes.

Episode ``i`` of a run is rolled out with ``env.reset(seed=seeds[i])`` and
``policy.reset(seeds[i])`` in a fresh state, so an episode depends on its seed only: the
output is identical for any number of workers. Workers take contiguous chunks of the seed list
(disjoint seed ranges); the parent receives the episodes back in seed order.

Shapes of a generated :class:`~latentrl.data.episode.Episode` (a = agents, T <= ``max_steps``):
frames uint8 ``(T+1, h, w, c)``, actions int64 ``(T, a)`` (the *executed* joint action, from
``info["executed_action"]`` where the env reports it), rewards ``(T,)``, terminations and
truncations ``(T,)``, infos ``{key: (T+1, ...)}`` (every numeric info entry present at reset and
at every step, e.g. ``agent_pos`` ``(T+1, a, 2)``).

Speed. Workers also compress the frames (zlib level 1, one stream per frame: the dataset's
chunks), so only ~1/80 of the raw bytes of MultiGrid video cross process boundaries and the
writer only copies bytes into the HDF5 file. :class:`GenerationStats` records where time went.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from latentrl.data.episode import Compression, EncodedFrames, Episode


class Policy(Protocol):
    """A behaviour policy: seeded per episode, maps (observation, info) to a joint action."""

    def reset(self, seed: int | None = None) -> None:
        """Start an episode; ``seed`` fixes every random choice the policy makes in it."""
        ...

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray | int:
        """Joint action ``(a,)`` (or a scalar for a Discrete action space)."""
        ...


PolicyFactory = Callable[[gym.Env], Policy]
"""Builds the policy for an env inside each worker; must be picklable where workers are spawned."""


class UniformRandomPolicy:
    """Uniformly random joint actions from a (Multi)Discrete space, each held ``repeat`` steps."""

    def __init__(self, action_space: gym.Space, repeat: int = 1) -> None:
        if isinstance(action_space, gym.spaces.MultiDiscrete):
            self._nvec = np.asarray(action_space.nvec, np.int64).reshape(-1)
            self._scalar = False
        elif isinstance(action_space, gym.spaces.Discrete):
            self._nvec = np.array([action_space.n], np.int64)
            self._scalar = True
        else:
            raise TypeError(
                f"UniformRandomPolicy needs a (Multi)Discrete space, got {action_space}"
            )
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        self.repeat = repeat
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        self._action = self._nvec * 0
        self._left = 0

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray | int:
        if self._left == 0:
            self._action = self._rng.integers(self._nvec)
            self._left = self.repeat
        self._left -= 1
        return int(self._action[0]) if self._scalar else self._action.copy()


@dataclass(frozen=True)
class UniformRandom:
    """:data:`PolicyFactory` of :class:`UniformRandomPolicy` (the default behaviour policy)."""

    repeat: int = 1

    def __call__(self, env: gym.Env) -> Policy:
        return UniformRandomPolicy(env.action_space, self.repeat)


@dataclass(frozen=True)
class GenerationSpec:
    """What to roll out. Picklable: it is sent to every worker.

    Attributes:
        env_id: a registered Gymnasium id (``"module:Id"`` also works: gym imports the module).
        env_kwargs: passed to ``gym.make`` (e.g. ``num_agents``, ``size``, ``max_steps``).
        policy: builds the behaviour policy from the env (default: :class:`UniformRandom`).
        max_steps: hard cap on T; an episode cut by it is marked truncated. ``None``: run until
            the env ends the episode.
        compression: how workers encode frames for the writer (``"gzip"``/``"none"``), or
            ``None`` to return raw frames (for in-memory use).
        imports: modules imported in each worker before ``gym.make`` (to register the env when
            workers are spawned rather than forked), e.g. ``("envs",)``.
    """

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    policy: PolicyFactory = field(default_factory=UniformRandom)
    max_steps: int | None = None
    compression: Compression | None = "gzip"
    level: int = 1
    imports: tuple[str, ...] = ()

    def make_env(self) -> gym.Env:
        """``gym.make(env_id, **env_kwargs)`` after importing :attr:`imports`."""
        for module in self.imports:
            importlib.import_module(module)
        return gym.make(self.env_id, **self.env_kwargs)


@dataclass
class GenerationStats:
    """Where the time of a generation run went.

    ``rollout_cpu_s`` and ``encode_cpu_s`` are CPU seconds summed over the workers (robust to
    other load on the machine); ``wait_s`` (parent blocked on workers), ``write_s`` (parent
    writing HDF5) and ``wall_s`` are wall-clock seconds; ``main_cpu_s`` is the parent's CPU time.
    """

    episodes: int = 0
    steps: int = 0
    raw_bytes: int = 0
    stored_bytes: int = 0
    rollout_cpu_s: float = 0.0
    encode_cpu_s: float = 0.0
    wait_s: float = 0.0
    write_s: float = 0.0
    main_cpu_s: float = 0.0
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """Plain dict with derived rates (MB = 1e6 bytes)."""
        d = {k: float(v) for k, v in self.__dict__.items()}
        d["raw_mb"] = self.raw_bytes / 1e6
        d["compression_ratio"] = self.raw_bytes / max(self.stored_bytes, 1)
        d["raw_mb_per_s"] = self.raw_bytes / 1e6 / max(self.wall_s, 1e-9)
        d["frames_per_s"] = (self.steps + self.episodes) / max(self.wall_s, 1e-9)
        return d


def _numeric_infos(info: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for key, value in info.items():
        arr = np.asarray(value)
        if arr.dtype.kind in "biuf":
            out[key] = arr
    return out


def _stack_infos(infos: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    # Keep the entries present, with one shape and dtype, in every info of the episode.
    stacked = {}
    for key, first in infos[0].items():
        values = [info.get(key) for info in infos]
        if all(v is not None and v.shape == first.shape and v.dtype == first.dtype for v in values):
            stacked[key] = np.stack(values)  # type: ignore[arg-type]
    return stacked


def rollout(env: gym.Env, policy: Policy, seed: int, max_steps: int | None = None) -> Episode:
    """Play one episode of ``policy`` in ``env`` from ``reset(seed=seed)``; raw frames."""
    obs, info = env.reset(seed=seed)
    policy.reset(seed)
    scalar_action = isinstance(env.action_space, gym.spaces.Discrete)
    frames, actions, rewards, terms, truncs = [obs], [], [], [], []
    infos = [_numeric_infos(info)]
    done = False
    while not done and (max_steps is None or len(actions) < max_steps):
        action = policy.act(obs, info)
        obs, reward, terminated, truncated, info = env.step(
            int(np.asarray(action).reshape(-1)[0]) if scalar_action else action
        )
        executed = info.get("executed_action", action)
        frames.append(obs)
        actions.append(np.asarray(executed, np.int64).reshape(-1))
        rewards.append(float(np.sum(reward)))  # a per-agent reward vector is summed
        terms.append(bool(terminated))
        truncs.append(bool(truncated))
        infos.append(_numeric_infos(info))
        done = terminated or truncated
    if not actions:
        raise RuntimeError(f"{env.spec.id if env.spec else env}: episode with seed {seed} is empty")
    if not done:
        truncs[-1] = True  # cut by max_steps
    frames_arr = np.stack(frames)
    if frames_arr.dtype != np.uint8 or frames_arr.ndim != 4:
        raise TypeError(
            f"observations must be uint8 (h, w, c) images, got {frames_arr.dtype} "
            f"{frames_arr.shape[1:]}"
        )
    return Episode(
        frames=frames_arr,
        actions=np.stack(actions),
        rewards=np.asarray(rewards, np.float64),
        terminations=np.asarray(terms, bool),
        truncations=np.asarray(truncs, bool),
        seed=int(seed),
        infos=_stack_infos(infos),
    )


class _Worker:
    """An env and a policy that live in one process and roll out episodes by seed."""

    def __init__(self, spec: GenerationSpec) -> None:
        self.spec = spec
        self.env = spec.make_env()
        self.policy = spec.policy(self.env)

    def run(self, seed: int) -> tuple[Episode, float, float]:
        t0 = time.thread_time()
        episode = rollout(self.env, self.policy, seed, self.spec.max_steps)
        t1 = time.thread_time()
        if self.spec.compression is not None:
            episode = episode.encoded(self.spec.compression, self.spec.level)
        return episode, t1 - t0, time.thread_time() - t1


_worker: _Worker | None = None  # the per-process worker, set by the pool initializer


def _init_worker(spec: GenerationSpec) -> None:
    global _worker
    _worker = _Worker(spec)


def _run_in_worker(seed: int) -> tuple[Episode, float, float]:
    assert _worker is not None
    return _worker.run(seed)


def default_mp_context() -> str:
    """``fork`` on Linux (fast start, inherits env registrations), else ``spawn``."""
    return "fork" if sys.platform.startswith("linux") else "spawn"


def generate_episodes(
    spec: GenerationSpec,
    seeds: Sequence[int],
    *,
    workers: int = 1,
    progress: bool | str = False,
    stats: GenerationStats | None = None,
    mp_context: str | None = None,
) -> Iterator[Episode]:
    """Yield one episode per seed, in seed order.

    Args:
        spec: env, policy and encoding.
        seeds: one ``reset`` seed per episode (e.g. ``range(base_seed, base_seed + n)``).
        workers: processes; ``<= 1`` runs in this process (same episodes either way).
        progress: show a tqdm bar (a string is used as its description).
        stats: filled in with episode counts and timings as episodes arrive.
        mp_context: multiprocessing start method (default :func:`default_mp_context`).
    """
    stats = stats if stats is not None else GenerationStats()
    seeds = [int(s) for s in seeds]
    if not seeds:
        return
    bar = tqdm(
        total=len(seeds),
        desc=progress if isinstance(progress, str) else "episodes",
        unit="ep",
        disable=not progress,
        dynamic_ncols=True,
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    pool = None
    try:
        if workers <= 1:
            worker = _Worker(spec)
            results: Iterator[tuple[Episode, float, float]] = map(worker.run, seeds)
        else:
            workers = min(workers, len(seeds))
            ctx = mp.get_context(mp_context or default_mp_context())
            pool = ctx.Pool(workers, initializer=_init_worker, initargs=(spec,))
            # Chunks of consecutive seeds amortise IPC; small enough to keep workers balanced.
            chunksize = max(1, min(16, len(seeds) // (4 * workers)))
            results = pool.imap(_run_in_worker, seeds, chunksize=chunksize)
        while True:
            t0 = time.perf_counter()
            try:
                episode, rollout_s, encode_s = next(results)
            except StopIteration:
                break
            stats.wait_s += time.perf_counter() - t0
            stats.episodes += 1
            stats.steps += episode.num_steps
            frames = episode.frames
            if isinstance(frames, EncodedFrames):
                stats.raw_bytes += frames.nbytes
                stats.stored_bytes += frames.stored_bytes
            else:
                stats.raw_bytes += frames.nbytes
                stats.stored_bytes += frames.nbytes
            stats.rollout_cpu_s += rollout_s
            stats.encode_cpu_s += encode_s
            stats.wall_s = time.perf_counter() - start
            stats.main_cpu_s = time.process_time() - cpu_start
            bar.update(1)
            yield episode
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        stats.wall_s = time.perf_counter() - start
        stats.main_cpu_s = time.process_time() - cpu_start


@dataclass(frozen=True)
class GeneratedDataset:
    """Result of :func:`generate_dataset`."""

    dataset_id: str
    path: Path
    stats: GenerationStats


def num_agents_of(action_space: gym.Space) -> int:
    """Agents behind a joint action space (1 for Discrete)."""
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return int(np.prod(action_space.shape))
    return 1


def generate_dataset(
    dataset_id: str,
    spec: GenerationSpec,
    seeds: Sequence[int],
    *,
    root: str | os.PathLike[str] | None = None,
    workers: int = 1,
    metadata: dict[str, Any] | None = None,
    description: str | None = None,
    overwrite: bool = False,
    progress: bool | str = False,
    mp_context: str | None = None,
) -> GeneratedDataset:
    """Generate one episode per seed and write them as the Minari dataset ``dataset_id``.

    The write is atomic and refuses to replace an existing dataset unless ``overwrite``
    (checked before any episode is generated). ``metadata`` (JSON-serialisable: task, policy
    name and parameters, split, ...) is stored under ``metadata["latentrl"]`` along with the env
    id, env kwargs, agent count, seeds and frame shape.
    """
    from latentrl.data.minari_io import DatasetWriter, check_writable, dataclass_to_json
    from latentrl.data.naming import split_of

    check_writable(dataset_id, root, overwrite)
    # One env in this process for the spaces and the spec (workers make their own).
    env = spec.make_env()
    try:
        obs_space, action_space = env.observation_space, env.action_space
        env_spec = env.spec
    finally:
        env.close()
    if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 3):
        raise TypeError(f"{spec.env_id}: observations must be (h, w, c) images, got {obs_space}")
    h, w, c = obs_space.shape
    try:
        split = split_of(dataset_id)
    except ValueError:
        split = None
    ours = {
        "env_id": spec.env_id,
        "env_kwargs": dataclass_to_json(spec.env_kwargs),
        "num_agents": num_agents_of(action_space),
        "max_steps": spec.max_steps,
        "split": split,
        "policy": getattr(spec.policy, "__name__", type(spec.policy).__name__),
        "policy_factory": repr(spec.policy),
        **dataclass_to_json(metadata or {}),
    }
    stats = GenerationStats()
    compression: Compression = spec.compression or "gzip"
    with DatasetWriter(
        dataset_id,
        frame_shape=(h, w, c),
        action_space=action_space,
        root=root,
        env_spec=env_spec,
        metadata=ours,
        description=description,
        overwrite=overwrite,
        compression=compression,
        level=spec.level,
    ) as writer:
        for episode in generate_episodes(
            spec,
            seeds,
            workers=workers,
            progress=progress,
            stats=stats,
            mp_context=mp_context,
        ):
            t0 = time.perf_counter()
            writer.add(episode)
            stats.write_s += time.perf_counter() - t0
        t0 = time.perf_counter()
    stats.write_s += time.perf_counter() - t0  # metadata and rename
    return GeneratedDataset(dataset_id, writer.final_path, stats)
