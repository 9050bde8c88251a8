"""Slot attention (Locatello et al., 2020) with recursive initialisation across frames.

Shapes: inputs ``(b, n, d_in)``, slots ``(b, k, d)``, attention ``(b, k, n)`` (each input's
weights sum to 1 over slots: slots compete for inputs).
"""

from __future__ import annotations

import torch
from einops import einsum, repeat
from torch import nn

from latentrl.nn.blocks import MLP


class SlotAttention(nn.Module):
    """Iterative competitive attention of ``k`` slots over ``n`` inputs."""

    def __init__(
        self, num_slots: int, dim: int, d_in: int, logit_scale: float = 1.0, eps: float = 1e-8
    ) -> None:
        super().__init__()
        self.num_slots = num_slots
        # Over a mostly uniform background the default softmax is nearly flat at init: every slot
        # averages all tokens and small entities get no gradient. A larger scale sharpens it.
        self.scale = logit_scale * dim**-0.5
        self.eps = eps
        # Learned per-slot initial values: the recursion gives each slot an identity it keeps.
        self.init_slots = nn.Parameter(torch.randn(num_slots, dim) * dim**-0.5)
        self.norm_in = nn.LayerNorm(d_in)
        self.to_k = nn.Linear(d_in, dim, bias=False)
        self.to_v = nn.Linear(d_in, dim, bias=False)
        self.norm_slots = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mult=2)

    def initial(self, batch: int) -> torch.Tensor:
        """The learned initial slots ``(b, k, d)``."""
        return repeat(self.init_slots, "k d -> b k d", b=batch)

    def forward(
        self, inputs: torch.Tensor, slots: torch.Tensor | None, iters: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Refine ``slots`` (or the learned init) for ``iters`` rounds; returns (slots, attn)."""
        b = inputs.shape[0]
        slots = self.initial(b) if slots is None else slots
        x = self.norm_in(inputs)
        k, v = self.to_k(x), self.to_v(x)
        attn = inputs.new_zeros(b, self.num_slots, inputs.shape[1])
        for _ in range(iters):
            q = self.to_q(self.norm_slots(slots))
            logits = einsum(q, k, "b k d, b n d -> b k n") * self.scale
            attn = logits.softmax(dim=1) + self.eps
            weights = attn / attn.sum(dim=-1, keepdim=True)
            updates = einsum(weights, v, "b k n, b n d -> b k d")
            slots = self.gru(updates.flatten(0, 1), slots.flatten(0, 1)).view_as(slots)
            slots = slots + self.mlp(self.norm_mlp(slots))
        return slots, attn
