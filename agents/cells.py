"""What the cloning policies' features extractors share: frames cut into cell patches, and
the x/y coordinate planes they append (CoordConv: the task is about positions)."""

from __future__ import annotations

import torch
from einops import repeat


def check_patch(h: int, w: int, patch: int) -> None:
    """Refuse frames that do not split into ``patch x patch`` cells."""
    if h % patch or w % patch:
        raise ValueError(
            f"{h}x{w} frames do not split into {patch}x{patch} patches: pass --patch with "
            "the env's tile size (or 1)"
        )


def coordinate_planes(h: int, w: int) -> torch.Tensor:
    """``(2, h, w)``: x then y, each from -1 to 1 across the frame."""
    ys, xs = torch.linspace(-1, 1, h), torch.linspace(-1, 1, w)
    return torch.stack([repeat(xs, "w -> h w", h=h), repeat(ys, "h -> h w", w=w)], dim=0)
