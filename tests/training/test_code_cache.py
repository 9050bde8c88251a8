"""CodeCache: windows stay inside episodes, exact contents, safetensors round trip, seeded sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from latentrl.data.codes import CodeCache

LENGTHS = (5, 2, 4, 3)  # frames per episode
TOKENS = 4


def coded_cache(labels: bool = True) -> CodeCache:
    """Frame ``f`` of episode ``e`` holds codes ``100 * e + f`` (and actions/positions alike)."""
    starts = np.concatenate([[0], np.cumsum(LENGTHS)]).astype(np.int64)
    episode = np.repeat(np.arange(len(LENGTHS)), LENGTHS)
    frame = np.arange(starts[-1]) - starts[episode]
    value = 100 * episode + frame
    codes = np.repeat(value[:, None], TOKENS, axis=1).astype(np.int16)
    actions = positions = None
    if labels:
        actions = np.stack([value, value + 1], axis=1).astype(np.int64)
        actions[starts[1:] - 1] = -1  # no action after an episode's last frame
        positions = np.repeat(np.stack([value, -value], axis=1)[:, None], 2, axis=1)
    return CodeCache(codes, starts, actions, positions)


@pytest.mark.parametrize("window", [1, 2, 3, 4, 5])
def test_windows_never_cross_episode_boundaries(window: int) -> None:
    cache = coded_cache()
    starts = cache.starts(window)
    assert len(starts) == sum(max(n - window + 1, 0) for n in LENGTHS)
    batch = cache.windows(starts, window)
    episode = batch.codes[:, :, 0] // 100
    frame = batch.codes[:, :, 0] % 100
    assert (episode == episode[:, :1]).all()
    assert (frame == frame[:, :1] + torch.arange(window)).all()
    assert batch.codes.dtype == torch.int64 and batch.codes.shape == (len(starts), window, TOKENS)
    if window > 1:
        # No -1 action inside a window: the last frame's missing action is never needed.
        assert batch.actions is not None and (batch.actions >= 0).all()
        assert batch.actions.shape == (len(starts), window - 1, 2)


def test_window_contents_and_labels() -> None:
    cache = coded_cache()
    batch = cache.windows(np.array([7]), 3)  # episode 2, frames 0..2
    assert batch.codes[0, :, 0].tolist() == [200, 201, 202]
    assert batch.actions is not None and batch.actions[0].tolist() == [[200, 201], [201, 202]]
    assert batch.positions is not None and batch.positions.shape == (1, 3, 2, 2)
    assert batch.positions[0, :, 0].tolist() == [[200, -200], [201, -201], [202, -202]]
    unlabelled = cache.windows(np.array([7]), 3, labels=False)
    assert unlabelled.actions is None and unlabelled.positions is None


def test_too_long_window_is_explained() -> None:
    with pytest.raises(ValueError, match="longest: 5"):
        coded_cache().starts(6)


@pytest.mark.parametrize("labels", [True, False])
def test_save_load_round_trip(tmp_path: Path, labels: bool) -> None:
    cache = coded_cache(labels)
    path = tmp_path / "codes" / "codes.safetensors"
    cache.save(path)
    assert not list(path.parent.glob(".*tmp*"))
    loaded = CodeCache.load(path)
    assert loaded.num_frames == cache.num_frames == sum(LENGTHS)
    for name in ("codes", "episode_starts", "actions", "positions"):
        a, b = getattr(cache, name), getattr(loaded, name)
        if a is None:
            assert b is None
        else:
            assert a.dtype == b.dtype and np.array_equal(a, b), name


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train_tokenizer"):
        CodeCache.load(tmp_path / "absent.safetensors")


def test_sample_is_deterministic_for_a_seeded_generator() -> None:
    cache = coded_cache()
    a = cache.sample(3, 16, torch.Generator().manual_seed(4), labels=True)
    b = cache.sample(3, 16, torch.Generator().manual_seed(4), labels=True)
    c = cache.sample(3, 16, torch.Generator().manual_seed(5), labels=True)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.actions, b.actions)
    assert not torch.equal(a.codes, c.codes)
    assert a.codes.shape == (16, 3, TOKENS)
    # Action-free by default, and every sampled window is a valid one.
    plain = cache.sample(3, 16, torch.Generator().manual_seed(4))
    assert plain.actions is None and plain.positions is None
    assert torch.equal(plain.codes, a.codes)
    valid = {int(s) for s in cache.starts(3)}
    firsts = a.codes[:, 0, 0].numpy()
    starts = np.concatenate([[0], np.cumsum(LENGTHS)])
    assert {int(starts[v // 100] + v % 100) for v in firsts} <= valid
    # The global torch RNG is not consumed.
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    cache.sample(3, 4, torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(1), expected)
