"""Windows of ``t`` consecutive frames of one episode, sampled from a :class:`FrameCache`.

A window starting at cache frame ``s`` covers frames ``s .. s+t-1``; it is valid only when all of
them belong to the same episode, so no window ever crosses an episode boundary. Batches are
:class:`~latentrl.types.VideoBatch`:

    frames     uint8 (b, t, h, w, c)
    actions    int64 (b, t-1, a)   executed action from frame i to i+1 (``None`` without labels;
                                   -1 marks a transition outside the labelled subset)
    positions  int64 (b, t, a, 2)  per-agent cell (x, y) (``None`` where unknown)

Three ways to draw windows:

* :class:`WindowDataset`: a ``torch.utils.data.Dataset`` of every valid window (use with a
  ``DataLoader`` and :func:`collate_windows`);
* :class:`WindowSampler`: random batches with a seeded numpy generator, one fancy-index per
  batch (no DataLoader overhead; the fast path for training from an in-memory cache);
* :class:`LabelledSubset`: the fixed, seeded fraction of transitions whose actions the latent
  action decoder may see, as windows ending in a labelled transition.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from latentrl.data.cache import FrameCache
from latentrl.data.errors import WindowTooLongError
from latentrl.types import VideoBatch


def window_starts(episode_starts: np.ndarray, window: int) -> np.ndarray:
    """int64 ``(n,)``: every cache frame where a window of ``window`` frames fits in its episode."""
    if window < 1:
        raise ValueError(f"window must be >= 1 frame, got {window}")
    starts = np.asarray(episode_starts, np.int64)
    counts = np.maximum(np.diff(starts) - window + 1, 0)
    # For each episode e, the run starts[e] .. starts[e] + counts[e] - 1.
    offsets = np.repeat(starts[:-1] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return np.arange(int(counts.sum()), dtype=np.int64) + offsets


def _valid_starts(cache: FrameCache, window: int) -> np.ndarray:
    starts = window_starts(cache.episode_starts, window)
    if len(starts) == 0:
        lengths = cache.episode_lengths
        sources = ", ".join(cache.dataset_ids) or "the episodes"
        raise WindowTooLongError(
            f"no episode of {sources} has {window} frames: {cache.num_episodes} episodes with "
            f"{lengths.min()}..{lengths.max()} frames (median {int(np.median(lengths))}). "
            f"Fix: use a window of at most {lengths.max()} frames, or generate longer episodes "
            "(experiments/generate_datasets.py --steps)."
        )
    return starts


def gather_windows(
    cache: FrameCache,
    starts: np.ndarray | Sequence[int],
    window: int,
    *,
    labels: bool = True,
    labelled_mask: np.ndarray | None = None,
) -> VideoBatch:
    """The windows beginning at cache frames ``starts`` as one batch (copies; the cache is untouched).

    ``labelled_mask`` (bool ``(F,)``) keeps only the actions of labelled transitions and writes -1
    elsewhere. Starts are not checked: use :func:`window_starts`.
    """
    starts = np.asarray(starts, np.int64)
    idx = starts[:, None] + np.arange(window)  # (b, t)
    frames = torch.from_numpy(cache.frames[idx])
    actions = positions = None
    if labels and cache.actions is not None and window > 1:
        act = cache.actions[idx[:, :-1]]
        if labelled_mask is not None:
            act = np.where(labelled_mask[idx[:, :-1]][..., None], act, -1)
        actions = torch.from_numpy(act)
    if labels and cache.positions is not None:
        positions = torch.from_numpy(cache.positions[idx])
    return VideoBatch(frames, actions, positions)


def collate_windows(items: Sequence[VideoBatch]) -> VideoBatch:
    """Stack unbatched windows (``WindowDataset`` items) into one :class:`VideoBatch`."""
    fields = []
    for parts in zip(*items, strict=True):
        fields.append(None if parts[0] is None else torch.stack(list(parts)))
    return VideoBatch(*fields)


class WindowDataset(Dataset[VideoBatch]):
    """Every valid window of ``window`` frames, as a map-style torch dataset.

    Item ``i`` is an *unbatched* ``VideoBatch`` (frames ``(t, h, w, c)``, actions ``(t-1, a)``,
    positions ``(t, a, 2)``); batch with ``DataLoader(ds, batch_size, shuffle=True,
    generator=torch.Generator().manual_seed(seed), collate_fn=collate_windows)``.
    """

    def __init__(self, cache: FrameCache, window: int, *, labels: bool = True) -> None:
        self.cache = cache
        self.window = window
        self.labels = labels
        self.starts = _valid_starts(cache, window)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> VideoBatch:
        batch = gather_windows(self.cache, self.starts[i : i + 1], self.window, labels=self.labels)
        return VideoBatch(*(None if x is None else x[0] for x in batch))


class WindowSampler:
    """Uniformly random windows, ``batch_size`` at a time, reproducible from ``seed``.

    ``sample()`` returns one :class:`VideoBatch`; iterating yields batches forever.
    """

    def __init__(
        self,
        cache: FrameCache,
        window: int,
        batch_size: int,
        *,
        seed: int = 0,
        labels: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.cache = cache
        self.window = window
        self.batch_size = batch_size
        self.labels = labels
        self.starts = _valid_starts(cache, window)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        """Number of distinct windows."""
        return len(self.starts)

    def sample(self) -> VideoBatch:
        """One batch of windows drawn uniformly with replacement."""
        pick = self.rng.integers(len(self.starts), size=self.batch_size)
        return gather_windows(self.cache, self.starts[pick], self.window, labels=self.labels)

    def __iter__(self) -> Iterator[VideoBatch]:
        while True:
            yield self.sample()


class LabelledSubset(Dataset[VideoBatch]):
    """A seeded ``fraction`` of a cache's transitions whose actions count as known labels.

    ``round(fraction * num_transitions)`` transitions (at least one) are chosen uniformly
    without replacement, among those with room for ``window - 2`` earlier frames of context in
    their episode. The choice depends only on (cache, fraction, seed, window), and with the same
    seed a smaller fraction picks a subset of a larger one. Each item is the window of
    ``window`` frames that *ends* with a labelled transition; its ``actions`` hold -1 for every
    transition outside the subset (so context transitions do not leak labels).

    Attributes:
        transitions: int64 ``(k,)`` sorted cache frames ``f`` of the labelled transitions
            ``f -> f+1``.
        mask: bool ``(F,)``, True at those frames.
    """

    def __init__(
        self, cache: FrameCache, fraction: float, *, seed: int = 0, window: int = 2
    ) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(
                f"fraction must be in (0, 1] (a share of the {cache.num_transitions} "
                f"transitions), got {fraction}; e.g. 0.05 labels 5% of them"
            )
        if window < 2:
            raise ValueError(f"a labelled window needs >= 2 frames, got {window}")
        if cache.actions is None:
            raise ValueError("the cache has no actions: load it with labels=True")
        self.cache = cache
        self.fraction = fraction
        self.window = window
        # Window starts s give labelled transitions f = s + window - 2 (the window's last one).
        candidates = _valid_starts(cache, window) + (window - 2)
        k = min(len(candidates), max(1, round(fraction * cache.num_transitions)))
        subset_seq, sample_seq = np.random.SeedSequence(seed).spawn(2)
        order = np.random.default_rng(subset_seq).permutation(len(candidates))
        self.transitions = np.sort(candidates[order[:k]])
        self.mask = np.zeros(cache.num_frames, bool)
        self.mask[self.transitions] = True
        self.rng = np.random.default_rng(sample_seq)

    def __len__(self) -> int:
        return len(self.transitions)

    def _batch(self, rows: np.ndarray) -> VideoBatch:
        starts = self.transitions[rows] - (self.window - 2)
        return gather_windows(self.cache, starts, self.window, labelled_mask=self.mask)

    def __getitem__(self, i: int) -> VideoBatch:
        batch = self._batch(np.array([i]))
        return VideoBatch(*(None if x is None else x[0] for x in batch))

    def sample(self, batch_size: int) -> VideoBatch:
        """``batch_size`` labelled windows drawn uniformly with replacement (seeded)."""
        return self._batch(self.rng.integers(len(self.transitions), size=batch_size))
