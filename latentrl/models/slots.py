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
        self.slot_attention = SlotAttention(config.num_slots, d, d, logit_scale=config.slot_scale)

    def step(
        self, tokens: torch.Tensor, prev: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Slots and attention of one frame ``(b, n, d)`` given the previous frame's slots."""
        cfg = self.config
        if prev is None or not cfg.recursive_init:
            return self.slot_attention(tokens, None, cfg.slot_iters_first)
        return self.slot_attention(tokens, prev, cfg.slot_iters)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        slots, attns = [], []
        prev = None
        for i in range(tokens.shape[1]):
            prev, attn = self.step(tokens[:, i], prev)
            slots.append(prev)
            attns.append(attn)
        return torch.stack(slots, dim=1), torch.stack(attns, dim=1)
