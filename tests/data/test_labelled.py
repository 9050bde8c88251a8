"""The labelled subset: a seeded fraction of transitions, windows ending in one, no leaks."""

from __future__ import annotations

import numpy as np
import pytest

from latentrl.data.cache import FrameCache
from latentrl.data.windows import LabelledSubset
from tests.data.test_windows import coded_episode


@pytest.fixture
def cache() -> FrameCache:
    lengths = [4, 9, 1, 12, 6, 15, 2]  # steps < 16 keep the frame code unambiguous
    return FrameCache.from_episodes(coded_episode(i, s) for i, s in enumerate(lengths))


def test_fraction_of_transitions(cache: FrameCache) -> None:
    assert cache.num_transitions == 49
    for fraction, k in ((1.0, 49), (0.5, 24), (0.1, 5), (0.001, 1)):
        subset = LabelledSubset(cache, fraction, seed=0)
        assert len(subset) == k
        assert subset.mask.sum() == k
    everything = LabelledSubset(cache, 1.0).transitions
    last_frames = cache.episode_starts[1:] - 1
    assert not np.isin(last_frames, everything).any()  # no transition leaves its episode


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_bad_fraction(cache: FrameCache, fraction: float) -> None:
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        LabelledSubset(cache, fraction)


def test_needs_actions(cache: FrameCache) -> None:
    frames_only = FrameCache(cache.frames, cache.episode_starts)
    with pytest.raises(ValueError, match="labels=True"):
        LabelledSubset(frames_only, 0.5)


def test_deterministic_and_nested(cache: FrameCache) -> None:
    a = LabelledSubset(cache, 0.25, seed=3)
    b = LabelledSubset(cache, 0.25, seed=3)
    np.testing.assert_array_equal(a.transitions, b.transitions)
    np.testing.assert_array_equal(a.sample(16).frames, b.sample(16).frames)
    assert not np.array_equal(a.transitions, LabelledSubset(cache, 0.25, seed=4).transitions)
    small = LabelledSubset(cache, 0.1, seed=3).transitions
    assert np.isin(small, a.transitions).all()


def test_windows_end_in_a_labelled_transition(cache: FrameCache) -> None:
    subset = LabelledSubset(cache, 0.3, seed=0, window=3)
    batch = subset.sample(64)
    values = batch.frames[:, :, 0, 0, 0].numpy().astype(int)
    assert (values // 16 == values[:, :1] // 16).all()  # inside one episode
    actions = batch.actions[..., 0].numpy()
    np.testing.assert_array_equal(actions[:, -1], values[:, -2])  # the labelled one is kept
    # A context transition shows its action only where it is labelled itself.
    for i, f in enumerate(subset.transitions):
        item = subset[i]
        assert item.frames.shape == (3, 4, 4, 3)
        context = cache.actions[f - 1] if subset.mask[f - 1] else np.full(2, -1)
        assert item.actions.tolist() == [context.tolist(), cache.actions[f].tolist()]


def test_window_two_is_exactly_the_transition(cache: FrameCache) -> None:
    subset = LabelledSubset(cache, 0.5, seed=1)
    item = subset[3]
    f = subset.transitions[3]
    np.testing.assert_array_equal(item.frames.numpy(), cache.frames[f : f + 2])
    assert item.actions.tolist() == [cache.actions[f].tolist()]
