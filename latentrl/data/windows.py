"""Windows of ``t`` consecutive frames of one episode: where they may start.

A window starting at cache frame ``s`` covers frames ``s .. s+t-1``; it is valid only when all of
them belong to the same episode, so no window ever crosses an episode boundary. The code caches
(:class:`latentrl.data.codes.CodeCache`, :class:`latentrl.data.device_codes.DeviceCodes`) draw
their training and evaluation windows from these starts.
"""

from __future__ import annotations

import numpy as np


def window_starts(episode_starts: np.ndarray, window: int) -> np.ndarray:
    """int64 ``(n,)``: every cache frame where a window of ``window`` frames fits in its episode."""
    if window < 1:
        raise ValueError(f"window must be >= 1 frame, got {window}")
    starts = np.asarray(episode_starts, np.int64)
    counts = np.maximum(np.diff(starts) - window + 1, 0)
    # For each episode e, the run starts[e] .. starts[e] + counts[e] - 1.
    offsets = np.repeat(starts[:-1] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return np.arange(int(counts.sum()), dtype=np.int64) + offsets
