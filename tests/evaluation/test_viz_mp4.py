"""MP4 output: H.264 written with PyAV reads back close to the frames, at any frame size."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from latentrl.viz import mp4_bytes


def read_mp4(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.mark.parametrize("size", [(32, 32), (33, 47)])
def test_mp4_round_trip_within_codec_tolerance(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    h, w = size
    video = np.zeros((6, h, w, 3), np.uint8)
    for t in range(6):  # a grey square moving right over a blue background
        video[t, ..., 2] = 160
        video[t, 8:20, 2 + 3 * t : 14 + 3 * t] = 200
    video = np.clip(video.astype(int) + rng.integers(-3, 4, video.shape), 0, 255).astype(np.uint8)
    back = read_mp4(mp4_bytes(video, fps=4))
    # yuv420p needs even sides: odd ones are padded by one black row/column.
    assert back.shape == (6, h + h % 2, w + w % 2, 3)
    err = np.abs(back[:, :h, :w].astype(int) - video.astype(int))
    assert err.mean() < 4.0, err.mean()
