"""The factorizer: slot attention over token features, recursively initialised across frames.

Shapes: tokens ``(b, t, n, d)`` -> slots ``(b, t, k, d)`` and attention ``(b, t, k, n)``.

Tracking prior (``slot_track`` > 0): recursion alone lets a slot that held something else take
an entity as it moves (the next-frame loss barely sees such a swap, while every reader of one
slot's latent action does). Each slot then predicts its *look*, the attention-weighted mean of
its tokens' seed features (frozen tokenizer features, see ``LatentActionModel.seed_features``),
with a linear head trained to match it (:meth:`Factorizer.look_loss`); on the next frame every
token's competition gets ``-|f_n - look_k|^2 / slot_track`` added, the first frame's soft
k-means term with the previous slots' looks as centres. The look comes from the slot vector, not
from its attention, so a predicted slot (planner, rollouts) carries it as a real one does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import einsum
from torch import nn

from latentrl.models.config import ModelConfig
from latentrl.nn.slot_attention import SlotAttention


class Factorizer(nn.Module):
    """Slot attention; frame t+1 starts from frame t's slots so each slot keeps its entity."""

    def __init__(self, config: ModelConfig, seed_dim: int | None = None) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.slot_attention = SlotAttention(
            config.num_slots, d, d, logit_scale=config.slot_scale, init=config.slot_init
        )
        if config.slot_track < 0:
            raise ValueError(f"slot_track is a temperature >= 0 (0: off), got {config.slot_track}")
        self.look: nn.Linear | None = None
        if config.slot_track > 0:
            if seed_dim is None:
                raise ValueError(
                    "the tracking prior (slot_track > 0) needs the seed features' width"
                )
            self.look = nn.Linear(d, seed_dim)

    def track_prior(self, prev: torch.Tensor, seed_features: torch.Tensor) -> torch.Tensor:
        """Logits ``(b, k, n)``: how well each token's look matches each previous slot's."""
        assert self.look is not None
        look = self.look(prev).detach()  # the head learns from look_loss only
        sq = (seed_features[:, None] - look[:, :, None]).pow(2).sum(-1)
        return -sq / self.config.slot_track

    def look_loss(
        self, slots: torch.Tensor, attn: torch.Tensor, seed_features: torch.Tensor
    ) -> torch.Tensor:
        """MSE of each slot's predicted look against its attention-weighted seed features.

        ``slots (..., k, d)``, ``attn (..., k, n)``, ``seed_features (..., n, f)``; the target is
        detached (it only says what the slot holds).
        """
        assert self.look is not None
        weights = attn / attn.sum(-1, keepdim=True).clamp_min(1e-8)
        target = einsum(weights, seed_features, "... k n, ... n f -> ... k f").detach()
        return F.mse_loss(self.look(slots), target)

    def step(
        self,
        tokens: torch.Tensor,
        prev: torch.Tensor | None,
        seed_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Slots and attention of one frame ``(b, n, d)`` given the previous frame's slots.

        ``seed_features`` ``(b, n, f)``: what a first frame is seeded on (``slot_init='seeded'``)
        and, with the tracking prior, what later frames' tokens are matched on.
        """
        cfg = self.config
        if prev is None or not cfg.recursive_init:
            return self.slot_attention(tokens, None, cfg.slot_iters_first, seed_features)
        prior = None
        if self.look is not None:
            if seed_features is None:
                raise ValueError("the tracking prior (slot_track > 0) needs seed_features")
            prior = self.track_prior(prev, seed_features)
        return self.slot_attention(tokens, prev, cfg.slot_iters, prior=prior)

    def forward(
        self, tokens: torch.Tensor, seed_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Slots ``(b, t, k, d)`` and attention ``(b, t, k, n)`` of tokens ``(b, t, n, d)``."""
        slots, attns = [], []
        prev = None
        for i in range(tokens.shape[1]):
            seeds = None if seed_features is None else seed_features[:, i]
            prev, attn = self.step(tokens[:, i], prev, seeds)
            slots.append(prev)
            attns.append(attn)
        return torch.stack(slots, dim=1), torch.stack(attns, dim=1)
