"""One recorded episode, and its frames encoded the way the dataset stores them.

Shapes (T = steps of the episode, a = agents, 1 for single-agent envs):

    frames       uint8 (T+1, h, w, c)   observation t is the frame *before* action t
    actions      int64 (T, a)           the executed joint action (blocked moves read 0)
    rewards      float64 (T,)           the env's reward (summed over agents where it is a vector)
    terminations bool (T,)
    truncations  bool (T,)
    infos        {key: (T+1, ...)}      row t is the info returned with observation t (row 0 comes
                                        from ``reset``); for MultiGrid ``agent_pos`` (T+1, a, 2)
                                        int64 (x, y), ``goal_pos`` (T+1, a, 2), ``action`` (the
                                        requested joint action) and ``executed_action`` (T+1, a)
                                        with row 0 from reset, ``success`` (T+1,) bool.

On disk a frame is channel-first ``(c, h, w)`` (Minari JPEG-compresses channel-last uint8 images);
:class:`EncodedFrames` holds an episode's frames in that layout, each frame deflated separately
(one HDF5 chunk per frame, HDF5's standard ``gzip`` filter) so that generation workers can
compress in parallel and the writer stores the bytes without touching them again.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Literal

import numpy as np
from einops import rearrange

Compression = Literal["gzip", "none"]
COMPRESSIONS: tuple[str, ...] = ("gzip", "none")


@functools.cache
def deflate_module() -> ModuleType:
    """``isal.isal_zlib`` where installed (same zlib streams, faster to write), else ``zlib``.

    Both write standard zlib streams that HDF5's gzip filter (and either module) decodes; the
    compressed bytes differ between the two, the decoded frames never do.
    """
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib
    return isal_zlib


@dataclass(frozen=True)
class EncodedFrames:
    """An episode's frames as stored: channel-first, one deflated HDF5 chunk per frame.

    Attributes:
        shape: ``(t, c, h, w)`` of the stored frames.
        compression: ``"gzip"`` (``chunks`` holds one zlib stream per frame) or ``"none"``
            (``raw`` holds the frames).
        level: zlib level used for ``gzip``.
        chunks: the deflated bytes of each frame (empty for ``none``).
        raw: uint8 ``(t, c, h, w)`` C-contiguous, only for ``none``.
    """

    shape: tuple[int, int, int, int]
    compression: Compression
    level: int = 1
    chunks: tuple[bytes, ...] = ()
    raw: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        """Size of the decoded frames in bytes."""
        return int(np.prod(self.shape))

    @property
    def stored_bytes(self) -> int:
        """Size of what will be written to disk."""
        return sum(map(len, self.chunks)) if self.compression == "gzip" else self.nbytes

    def decode(self) -> np.ndarray:
        """Frames back as uint8 ``(t, h, w, c)``."""
        if self.compression == "none":
            assert self.raw is not None
            chw = self.raw
        else:
            inflate = deflate_module().decompress
            chw = np.frombuffer(b"".join(inflate(c) for c in self.chunks), np.uint8)
            chw = chw.reshape(self.shape)
        return np.ascontiguousarray(rearrange(chw, "t c h w -> t h w c"))


def encode_frames(
    frames: np.ndarray, compression: Compression = "gzip", level: int = 1
) -> EncodedFrames:
    """uint8 ``(t, h, w, c)`` -> :class:`EncodedFrames` (channel-first, deflated per frame).

    Level 1 because MultiGrid frames (flat colours on a grid) already shrink about 80x at level 1,
    and higher levels cost 2-3x the time for little more.
    """
    if frames.dtype != np.uint8 or frames.ndim != 4:
        raise TypeError(f"frames must be uint8 (t, h, w, c), got {frames.dtype} {frames.shape}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}: use one of {COMPRESSIONS}")
    chw = np.ascontiguousarray(rearrange(frames, "t h w c -> t c h w"))
    shape = tuple(chw.shape)
    if compression == "none":
        return EncodedFrames(shape, "none", raw=chw)  # type: ignore[arg-type]
    module = deflate_module()
    if module is not zlib:
        level = min(level, 3)  # isal's levels are 0-3
    chunks = tuple(module.compress(frame, level) for frame in chw)
    return EncodedFrames(shape, "gzip", level, chunks)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Episode:
    """One episode (shapes in the module docstring).

    ``frames`` is a uint8 array, or :class:`EncodedFrames` when generation workers compressed it
    for the writer (:meth:`frame_array` decodes either). ``seed`` is the seed ``reset`` got.
    """

    frames: np.ndarray | EncodedFrames
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    seed: int | None = None
    infos: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        steps = len(self.actions)
        frames = self.frames.shape[0]
        if steps < 1 or frames != steps + 1:
            raise ValueError(
                f"an episode needs T >= 1 actions and T + 1 frames, got {steps} actions and "
                f"{frames} frames"
            )
        for name in ("rewards", "terminations", "truncations"):
            if len(getattr(self, name)) != steps:
                raise ValueError(f"{name} has length {len(getattr(self, name))}, expected {steps}")
        for key, value in self.infos.items():
            if len(value) != steps + 1:
                raise ValueError(f"infos[{key!r}] has length {len(value)}, expected {steps + 1}")

    @property
    def num_steps(self) -> int:
        """T, the number of actions."""
        return len(self.actions)

    @property
    def positions(self) -> np.ndarray | None:
        """int64 ``(T+1, a, 2)`` per-agent cell ``(x, y)``, or ``None`` where the env has none."""
        return self.infos.get("agent_pos")

    @property
    def goals(self) -> np.ndarray | None:
        """int64 ``(T+1, a, 2)`` per-agent goal cell (-1 where there is none), or ``None``."""
        return self.infos.get("goal_pos")

    def frame_array(self) -> np.ndarray:
        """uint8 ``(T+1, h, w, c)``, decoding the frames if they are encoded."""
        if isinstance(self.frames, EncodedFrames):
            return self.frames.decode()
        return self.frames

    def encoded(self, compression: Compression = "gzip", level: int = 1) -> Episode:
        """A copy whose frames are :class:`EncodedFrames` (no-op if they already are)."""
        if isinstance(self.frames, EncodedFrames):
            return self
        return Episode(
            encode_frames(self.frames, compression, level),
            self.actions,
            self.rewards,
            self.terminations,
            self.truncations,
            self.seed,
            self.infos,
        )
