"""Patch merging: ``p x p`` neighbouring token features become one state token.

The token-level models (LAM, WM) run a spatial transformer over every token of a frame, so
their step grows with the square of the token count; merging ``p x p`` cells into one token
(as Genie and LAPO patchify their frames) divides the attention by ``p^4`` and the MLP rows by
``p^2``. Every merged token keeps what its cells hold (a linear map of their concatenated
features, positions included); the aggregator's per-token queries read the merged tokens by
cross-attention, as they read FLAM's slots.
"""

from __future__ import annotations

from einops.layers.torch import Rearrange
from torch import nn


def patch_merge(dim: int, grid: int, patch: int) -> nn.Sequential:
    """Token features ``(..., g*g, d)`` -> merged tokens ``(..., (g/p)^2, d)``.

    ``patch`` must divide ``grid`` (:class:`latentrl.models.ModelConfig` checks ``scene_patch``).
    """
    return nn.Sequential(
        Rearrange("... (h p1 w p2) d -> ... (h w) (p1 p2 d)", h=grid // patch, p1=patch, p2=patch),
        nn.Linear(patch * patch * dim, dim),
    )
