"""One contiguous in-memory cache of every frame of one or more datasets.

Shapes (F = frames of all kept episodes, E = episodes, a = agents):

    frames          uint8 (F, h, w, c)   episode e is frames[starts[e]:starts[e+1]]
    episode_starts  int64 (E + 1,)       offsets; starts[0] = 0, starts[E] = F
    actions         int64 (F, a)         row f: the executed action from frame f to f + 1;
                                         -1 on the last frame of each episode (no next frame)
    positions       int64 (F, a, 2)      per-agent cell (x, y) at frame f, where datasets have it
    episode_sources int64 (E, 2)         (index into dataset_ids, episode index in that dataset)

Frames the env marked ``info["frame_is_repeat"]`` (Procgen's final frame, a copy of the one
before it: the true last frame is never rendered) are dropped with the action leading to them,
so no window ever contains that non-transition.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from latentrl.data.episode import Episode
from latentrl.data.errors import FrameShapeMismatchError
from latentrl.data.minari_io import DatasetReader

_REPEAT_KEY = "frame_is_repeat"


def _kept_frames(is_repeat: np.ndarray | None, frames: int) -> int:
    if is_repeat is None:
        return frames
    repeats = np.flatnonzero(np.asarray(is_repeat).reshape(frames, -1).any(axis=1))
    return int(repeats[0]) if len(repeats) else frames


@dataclass(frozen=True, eq=False)
class FrameCache:
    """Frames (and labels) of whole episodes, back to back (shapes in the module docstring)."""

    frames: np.ndarray
    episode_starts: np.ndarray
    actions: np.ndarray | None = None
    positions: np.ndarray | None = None
    dataset_ids: tuple[str, ...] = ()
    episode_sources: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        """F."""
        return len(self.frames)

    @property
    def num_episodes(self) -> int:
        """E."""
        return len(self.episode_starts) - 1

    @property
    def episode_lengths(self) -> np.ndarray:
        """int64 ``(E,)``: frames per episode."""
        return np.diff(self.episode_starts)

    @property
    def num_transitions(self) -> int:
        """Pairs of consecutive frames inside an episode: F - E."""
        return self.num_frames - self.num_episodes

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(h, w, c)``."""
        return tuple(self.frames.shape[1:])  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        """Bytes of the frame array."""
        return int(self.frames.nbytes)

    @classmethod
    def from_episodes(cls, episodes: Iterable[Episode], *, labels: bool = True) -> FrameCache:
        """Cache in-memory episodes (e.g. straight from ``generate_episodes``)."""
        frames, actions, positions, lengths = [], [], [], []
        for ep in episodes:
            n = _kept_frames(ep.infos.get(_REPEAT_KEY), ep.num_steps + 1)
            frames.append(ep.frame_array()[:n])
            lengths.append(n)
            if labels:
                act = np.asarray(ep.actions, np.int64)
                # (T, a) or (T,); explicit so that a one-frame episode (T = 0) keeps its a.
                act = act.reshape(ep.num_steps, int(np.prod(act.shape[1:], dtype=np.int64)))
                act = act[: n - 1]
                actions.append(np.concatenate([act, np.full((1, act.shape[1]), -1, np.int64)]))
                if ep.positions is not None:
                    positions.append(np.asarray(ep.positions, np.int64)[:n])
        if not frames:
            raise ValueError("no episodes to cache")
        _check_shapes({f"episode {i}": f.shape[1:] for i, f in enumerate(frames)})
        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        act_arr = pos_arr = None
        if labels:
            _check_agents({f"episode {i}": a.shape[1] for i, a in enumerate(actions)})
            act_arr = np.concatenate(actions)
            if len(positions) == len(frames):
                pos_arr = np.concatenate(positions)
        sources = np.stack([np.zeros(len(lengths), np.int64), np.arange(len(lengths))], axis=1)
        return cls(np.concatenate(frames), starts, act_arr, pos_arr, (), sources)

    @classmethod
    def load(
        cls,
        dataset_ids: str | Sequence[str],
        root: str | os.PathLike[str] | None = None,
        *,
        labels: bool = True,
        max_episodes: int | None = None,
        progress: bool = False,
        threads: int | None = None,
    ) -> FrameCache:
        """Read datasets into one cache.

        Args:
            dataset_ids: one id or several (their frames must have the same shape).
            root: datasets root (``None`` = ``$MINARI_DATASETS_PATH`` or Minari's default).
            labels: also load actions and agent positions (for evaluation and the labelled
                subset); ``False`` loads frames only (and allows mixing agent counts).
            max_episodes: read at most this many episodes of each dataset (the first ones).
            progress: show a tqdm bar over episodes.
            threads: reading threads (default: one per CPU core).

        Raises:
            DatasetNotFoundError: unknown id (the message lists the datasets under the root).
            DatasetCorruptError: unreadable/truncated file (the message names it).
            FrameShapeMismatchError: datasets with different frame shapes or agent counts.
        """
        ids = (dataset_ids,) if isinstance(dataset_ids, str) else tuple(dataset_ids)
        if not ids:
            raise ValueError("no dataset ids given")
        readers = [DatasetReader(i, root) for i in ids]
        try:
            return cls._load(readers, labels, max_episodes, progress, threads)
        finally:
            for r in readers:
                r.close()

    @classmethod
    def _load(
        cls,
        readers: list[DatasetReader],
        labels: bool,
        max_episodes: int | None,
        progress: bool,
        threads: int | None,
    ) -> FrameCache:
        _check_shapes({r.dataset_id: r.frame_shape for r in readers})
        plan = []  # (reader index, episode, frames kept)
        for ri, r in enumerate(readers):
            # Every episode's shapes and dtypes, before anything is allocated or decoded.
            steps = [r.check_episode(ep) for ep in range(r.num_episodes)[:max_episodes]]
            has_repeat = _REPEAT_KEY in r.info_keys() if r.num_episodes else False
            for ep, t in enumerate(steps):
                repeat = r.read_array(ep, f"infos/{_REPEAT_KEY}") if has_repeat else None
                plan.append((ri, ep, _kept_frames(repeat, int(t) + 1)))
        if not plan:
            raise ValueError(f"datasets {[r.dataset_id for r in readers]} have no episodes")
        lengths = np.array([n for _, _, n in plan], np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        h, w, c = readers[0].frame_shape
        frames = np.empty((int(starts[-1]), h, w, c), np.uint8)
        max_len = int(lengths.max())

        actions = positions = None
        if labels:
            agents = {r.dataset_id: r.num_agents for r in readers if r.num_episodes}
            _check_agents(agents)
            a = next(iter(agents.values()))
            actions = np.full((len(frames), a), -1, np.int64)
            if all("agent_pos" in r.info_keys() for r in readers if r.num_episodes):
                positions = np.empty((len(frames), a, 2), np.int64)

        def read(job: tuple[int, int, int, int], scratch: np.ndarray) -> None:
            ri, ep, n, start = job
            r = readers[ri]
            r.read_frames_into(ep, frames[start : start + n], scratch)
            if actions is not None:
                act = r.read_array(ep, "actions")
                actions[start : start + n - 1] = act.reshape(len(act), a)[: n - 1]
            if positions is not None:
                positions[start : start + n] = r.read_array(ep, "infos/agent_pos")[:n]

        jobs = [(ri, ep, n, int(s)) for (ri, ep, n), s in zip(plan, starts[:-1], strict=True)]
        bar = tqdm(total=len(jobs), desc="loading frames", unit="ep", disable=not progress)
        threads = max(1, min(threads or os.cpu_count() or 1, len(jobs)))
        # Threads, not processes: inflating and copying release the GIL, and they write
        # straight into the shared cache. Each thread reads every threads-th episode.
        scratches = [np.empty((max_len, c, h, w), np.uint8) for _ in range(threads)]

        def run(k: int) -> None:
            for job in jobs[k::threads]:
                read(job, scratches[k])
                bar.update(1)

        try:
            if threads == 1:
                run(0)
            else:
                with ThreadPoolExecutor(threads) as pool:
                    list(pool.map(run, range(threads)))
        finally:
            bar.close()
        sources = np.array([(ri, ep) for ri, ep, _ in plan], np.int64)
        return cls(
            frames, starts, actions, positions, tuple(r.dataset_id for r in readers), sources
        )


def _check_shapes(shapes: dict[str, tuple[int, ...]]) -> None:
    if len(set(shapes.values())) > 1:
        listing = "\n  ".join(f"{k}: (h, w, c) = {v}" for k, v in shapes.items())
        raise FrameShapeMismatchError(
            f"frames of different shapes cannot share one cache:\n  {listing}\n"
            "Fix: load datasets with the same frame size together (the same "
            "generate_datasets.py --size/--tile-size or --frame-size), or load them into "
            "separate caches."
        )


def _check_agents(agents: dict[str, int]) -> None:
    if len(set(agents.values())) > 1:
        listing = ", ".join(f"{k}: a={v}" for k, v in agents.items())
        raise FrameShapeMismatchError(
            f"actions of different agent counts cannot share one cache ({listing}). "
            "Fix: pass labels=False to load frames only, or load each agent count separately."
        )
