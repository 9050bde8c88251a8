"""Frame cache and windows: exact contents, no window crosses an episode, clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from latentrl.data.cache import FrameCache
from latentrl.data.episode import Episode
from latentrl.data.errors import FrameShapeMismatchError, WindowTooLongError
from latentrl.data.generate import GenerationSpec, generate_dataset, generate_episodes
from latentrl.data.windows import (
    WindowDataset,
    WindowSampler,
    collate_windows,
    gather_windows,
    window_starts,
)
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
    dataset = WindowDataset(coded, window)
    assert len(dataset) == sum(max(n - window + 1, 0) for n in coded.episode_lengths)
    batch = gather_windows(coded, dataset.starts, window)
    values = batch.frames[:, :, 0, 0, 0].numpy().astype(int)  # 16 * episode + t
    episode, t = values // 16, values % 16
    assert (episode == episode[:, :1]).all()  # one episode per window
    assert (np.diff(t, axis=1) == 1).all()  # consecutive frames
    if window > 1:
        np.testing.assert_array_equal(batch.actions[..., 0].numpy(), values[:, :-1])
    np.testing.assert_array_equal(batch.positions[..., 0, 0].numpy(), values)


def test_batch_types_and_shapes(coded: FrameCache) -> None:
    batch = WindowSampler(coded, 4, batch_size=5, seed=0).sample()
    assert batch.frames.shape == (5, 4, 4, 4, 3) and batch.frames.dtype == torch.uint8
    assert batch.actions.shape == (5, 3, 2) and batch.actions.dtype == torch.int64
    assert batch.positions.shape == (5, 4, 2, 2)
    frames_only = WindowSampler(coded, 4, batch_size=2, labels=False).sample()
    assert frames_only.actions is None and frames_only.positions is None


def test_sampler_is_seeded(coded: FrameCache) -> None:
    a = [WindowSampler(coded, 3, 8, seed=1).sample().frames for _ in range(2)]
    b = WindowSampler(coded, 3, 8, seed=1)
    c = WindowSampler(coded, 3, 8, seed=2)
    assert torch.equal(a[0], b.sample().frames)
    assert not torch.equal(b.sample().frames, c.sample().frames)


def test_sampling_does_not_touch_the_cache(coded: FrameCache) -> None:
    before = coded.frames.copy()
    batch = WindowSampler(coded, 2, 4).sample()
    batch.frames.zero_()
    np.testing.assert_array_equal(coded.frames, before)


def test_dataset_with_dataloader(coded: FrameCache) -> None:
    dataset = WindowDataset(coded, 3)
    loader = DataLoader(
        dataset,
        batch_size=4,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
        collate_fn=collate_windows,
    )
    batches = list(loader)
    assert sum(len(b.frames) for b in batches) == len(dataset)
    assert batches[0].frames.shape[1:] == (3, 4, 4, 3)
    assert batches[0].actions.shape[1:] == (2, 2)


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
    batch = gather_windows(cache, window_starts(cache.episode_starts, 2), 2)
    # Every kept pair is a real transition: the flagged copy of the last frame is gone.
    assert (batch.frames[:, 0] != batch.frames[:, 1]).flatten(1).any(1).all()


def test_several_datasets_in_one_cache(root: Path) -> None:
    generate_dataset("test/dots-v0", DOTS, range(3), root=root)
    generate_dataset("test/dots-v1", DOTS, range(3, 5), root=root)
    cache = FrameCache.load(["test/dots-v0", "test/dots-v1"], root)
    assert cache.num_episodes == 5
    assert cache.episode_sources.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]]


def test_window_longer_than_every_episode(root: Path) -> None:
    generate_dataset("test/dots-v0", DOTS, range(3), root=root)  # 3, 4 and 5 frames
    cache = FrameCache.load("test/dots-v0", root)
    with pytest.raises(WindowTooLongError) as err:
        WindowSampler(cache, 9, batch_size=2)
    message = str(err.value)
    for fragment in ("test/dots-v0", "9 frames", "3..5", "--steps"):
        assert fragment in message


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
