"""Patch merging: ``p x p`` neighbouring token features become one state token.

The token-level models (LAM, WM) run a spatial transformer over every token of a frame, so
their step grows with the square of the token count; merging ``p x p`` cells into one token
(as Genie and LAPO patchify their frames) divides the attention by ``p^4`` and the MLP rows by
``p^2``. Every merged token keeps what its cells hold (a linear map of their concatenated
features, positions included); the aggregator's per-token queries read the merged tokens by
cross-attention, as they read FLAM's slots.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


class PatchMerge(nn.Module):
    """Token features ``(..., g*g, d)`` -> merged tokens ``(..., (g/p)^2, d)``."""

    def __init__(self, dim: int, grid: int, patch: int) -> None:
        super().__init__()
        if patch < 1 or grid % patch:
            raise ValueError(
                f"cannot merge {patch}x{patch} cells of a {grid}x{grid} token grid: pass train_lam.py "
                f"--scene-patch with a divisor of {grid}"
            )
        self.grid, self.patch = grid, patch
        self.proj = nn.Linear(patch * patch * dim, dim)

    @property
    def tokens(self) -> int:
        """Merged tokens per frame."""
        return (self.grid // self.patch) ** 2

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        p = self.patch
        merged = rearrange(
            tokens,
            "... (h p1 w p2) d -> ... (h w) (p1 p2 d)",
            h=self.grid // p,
            p1=p,
            p2=p,
        )
        return self.proj(merged)
