"""Frame cache and windows: exact contents, no window crosses an episode, clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from latentrl.data.cache import FrameCache
from latentrl.data.episode import Episode
from latentrl.data.errors import FrameShapeMismatchError
from latentrl.data.generate import GenerationSpec, generate_dataset, generate_episodes
from latentrl.data.windows import window_starts
from tests.data.conftest import DOTS_ID, PROCGEN_LIKE_ID

DOTS = GenerationSpec(DOTS_ID, {"num_agents": 2, "vary_length": True}, max_steps=7)
PROCGEN_LIKE = GenerationSpec(PROCGEN_LIKE_ID)


def coded_episode(index: int, steps: int, agents: int = 2) -> Episode:
    """Frame t of episode ``index`` is filled with ``16 * index + t``; actions likewise."""
    values = 16 * index + np.arange(steps + 1)
    frames = np.broadcast_to(values[:, None, None, None], (steps + 1, 4, 4, 3)).astype(np.uint8)
    actions = np.repeat(values[:-1, None], agents, axis=1).astype(np.int64)
    positions = np.repeat(values[:, None, None], agents, axis=1).repeat(2, axis=2)
    return Episode(
        frames,
        actions,
        np.zeros(steps),
        np.zeros(steps, bool),
        np.zeros(steps, bool),
        seed=index,
        infos={"agent_pos": positions.astype(np.int64)},
    )


@pytest.fixture
def coded() -> FrameCache:
    return FrameCache.from_episodes(coded_episode(i, s) for i, s in enumerate([1, 5, 2, 8, 3]))


def test_window_starts_by_hand() -> None:
    starts = np.array([0, 2, 8, 11])  # episodes of 2, 6 and 3 frames
    assert window_starts(starts, 3).tolist() == [2, 3, 4, 5, 8]
    assert window_starts(starts, 2).tolist() == [0, 2, 3, 4, 5, 6, 8, 9]
    assert window_starts(starts, 7).tolist() == []


@pytest.mark.parametrize("window", [1, 2, 3, 4, 6, 9])
def test_every_window_stays_in_one_episode(coded: FrameCache, window: int) -> None:
    starts = window_starts(coded.episode_starts, window)
    assert len(starts) == sum(max(n - window + 1, 0) for n in coded.episode_lengths)
    idx = starts[:, None] + np.arange(window)
    values = coded.frames[idx][:, :, 0, 0, 0].astype(int)  # 16 * episode + t
    episode, t = values // 16, values % 16
    assert (episode == episode[:, :1]).all()  # one episode per window
    assert (np.diff(t, axis=1) == 1).all()  # consecutive frames
    if window > 1:
        np.testing.assert_array_equal(coded.actions[idx[:, :-1]][..., 0], values[:, :-1])
    np.testing.assert_array_equal(coded.positions[idx][..., 0, 0], values)


def test_load_matches_in_memory_episodes(root: Path) -> None:
    episodes = list(generate_episodes(dataclasses.replace(DOTS, compression=None), range(6)))
    generate_dataset("test/dots-v0", DOTS, range(6), root=root, workers=2)
    loaded = FrameCache.load("test/dots-v0", root, threads=2)
    expected = FrameCache.from_episodes(episodes)
    np.testing.assert_array_equal(loaded.frames, expected.frames)
    np.testing.assert_array_equal(loaded.episode_starts, expected.episode_starts)
    np.testing.assert_array_equal(loaded.actions, expected.actions)
    np.testing.assert_array_equal(loaded.positions, expected.positions)
    assert loaded.episode_lengths.tolist() == [e.num_steps + 1 for e in episodes]
    assert loaded.dataset_ids == ("test/dots-v0",)


def test_procgen_like_repeat_frames_are_dropped(root: Path) -> None:
    generate_dataset("test/procgenlike-v0", PROCGEN_LIKE, range(5), root=root)
    cache = FrameCache.load("test/procgenlike-v0", root)
    steps = [3 + s % 5 for s in range(5)]  # the env's episode lengths in actions
    assert cache.episode_lengths.tolist() == steps  # T + 1 frames minus the repeat
    assert cache.positions is None and cache.actions.shape == (sum(steps), 1)
    pairs = cache.frames[window_starts(cache.episode_starts, 2)[:, None] + np.arange(2)]
    # Every kept pair is a real transition: the flagged copy of the last frame is gone.
    assert (pairs[:, 0] != pairs[:, 1]).reshape(len(pairs), -1).any(1).all()


def test_several_datasets_in_one_cache(root: Path) -> None:
    generate_dataset("test/dots-v0", DOTS, range(3), root=root)
    generate_dataset("test/dots-v1", DOTS, range(3, 5), root=root)
    cache = FrameCache.load(["test/dots-v0", "test/dots-v1"], root)
    assert cache.num_episodes == 5
    assert cache.episode_sources.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]]


def test_mismatched_frame_shapes(root: Path) -> None:
    generate_dataset("test/dots-v0", DOTS, range(2), root=root)
    small = GenerationSpec(DOTS_ID, {"size": 6}, max_steps=3)
    generate_dataset("test/small-v0", small, range(2), root=root)
    with pytest.raises(FrameShapeMismatchError) as err:
        FrameCache.load(["test/dots-v0", "test/small-v0"], root)
    assert "(32, 32, 3)" in str(err.value) and "(24, 24, 3)" in str(err.value)


def test_mixed_agent_counts_need_labels_off(root: Path) -> None:
    generate_dataset("test/dots-v0", DOTS, range(2), root=root)
    three = GenerationSpec(DOTS_ID, {"num_agents": 3}, max_steps=3)
    generate_dataset("test/three-v0", three, range(2), root=root)
    with pytest.raises(FrameShapeMismatchError, match="labels=False"):
        FrameCache.load(["test/dots-v0", "test/three-v0"], root)
    cache = FrameCache.load(["test/dots-v0", "test/three-v0"], root, labels=False)
    assert cache.actions is None and cache.num_episodes == 4


def test_max_episodes(root: Path) -> None:
    generate_dataset("test/dots-v0", DOTS, range(4), root=root)
    assert FrameCache.load("test/dots-v0", root, max_episodes=2).num_episodes == 2
