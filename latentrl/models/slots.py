"""The factorizer: slot attention over token features, recursively initialised across frames.

Shapes: tokens ``(b, t, n, d)`` -> slots ``(b, t, k, d)`` and attention ``(b, t, k, n)``.
"""

from __future__ import annotations

import torch
from torch import nn

from latentrl.models.config import ModelConfig
from latentrl.nn.slot_attention import SlotAttention


class Factorizer(nn.Module):
    """Slot attention; frame t+1 starts from frame t's slots so each slot keeps its entity."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.slot_attention = SlotAttention(
            config.num_slots, d, d, logit_scale=config.slot_scale, init=config.slot_init
        )

    def step(
        self,
        tokens: torch.Tensor,
        prev: torch.Tensor | None,
        seed_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Slots and attention of one frame ``(b, n, d)`` given the previous frame's slots.

        ``seed_features`` ``(b, n, f)``: what a first frame is seeded on (``slot_init='seeded'``).
        """
        cfg = self.config
        if prev is None or not cfg.recursive_init:
            return self.slot_attention(tokens, None, cfg.slot_iters_first, seed_features)
        return self.slot_attention(tokens, prev, cfg.slot_iters)

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
