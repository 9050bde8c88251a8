"""Typed batches shared by the data layer, the models and the agents.

Axis legend (einops names used across the project):
    b batch, t time, k slot/factor, n token/patch, d feature, a agent,
    c channel, h w height width.

Frames are uint8 ``(b, t, h, w, c)`` in batches and caches; models turn them into
float ``(b, t, c, h, w)`` in [0, 1] with :func:`frames_to_float`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from einops import rearrange


def frames_to_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``(b, t, h, w, c)`` -> float ``(b, t, c, h, w)`` in [0, 1] (a new tensor)."""
    if frames.dtype != torch.uint8:
        raise TypeError(f"expected uint8 frames, got {frames.dtype}")
    return rearrange(frames, "b t h w c -> b t c h w").float().div(255.0)


class CodeBatch(NamedTuple):
    """A batch of windows as tokenizer code indices: what stage 2 trains on.

    Attributes:
        codes: int64 ``(b, t, n)`` code indices of ``n`` tokens per frame (row-major grid).
        actions: int64 ``(b, t - 1, a)`` true joint actions (evaluation and WM only) or ``None``.
        positions: int64 ``(b, t, a, 2)`` per-agent cells ``(x, y)`` (evaluation only) or ``None``.
    """

    codes: torch.Tensor
    actions: torch.Tensor | None = None
    positions: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> CodeBatch:
        """Return a copy with every tensor moved to ``device``."""
        return CodeBatch(*(None if x is None else x.to(device, non_blocking=True) for x in self))

    def without_labels(self) -> CodeBatch:
        """The action-free view: what a latent action model may train on."""
        return CodeBatch(codes=self.codes)
