"""Pre-norm transformer blocks: self-attention, cross-attention, MLP.

Shapes: queries ``(b, n, d)``, context ``(b, m, d)``; masks are boolean ``(n, m)`` with True
where attention is allowed (``F.scaled_dot_product_attention`` convention).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import nn


class Attention(nn.Module):
    """Multi-head attention on top of ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"model width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        q = rearrange(self.to_q(x), "b n (h e) -> b h n e", h=self.heads)
        k, v = rearrange(self.to_kv(context), "b m (two h e) -> two b h m e", two=2, h=self.heads)
        if mask is None and q.shape[2] * k.shape[2] <= SMALL_ATTENTION:
            y = small_attention(q, k, v)
        else:
            y = fused_attention(q, k, v, mask)
        return self.out(rearrange(y, "b h n e -> b n (h e)"))


def fused_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """``F.scaled_dot_product_attention``, or, on a CPU autocasting to bf16, its math written
    out: two bf16 matmuls around a softmax in fp32.

    PyTorch's CPU flash-attention kernel in bf16 costs 3-5x its fp32 self in the backward pass
    (docs/research/engine_speed.md), while bf16 matmuls run about 4x faster than fp32 on a CPU
    with AVX512-BF16; the softmax stays in fp32 as flash attention keeps its accumulators.
    """
    if not (q.device.type == "cpu" and torch.is_autocast_enabled("cpu")):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = einsum(q, k, "b h n e, b h m e -> b h n m") * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.float().softmax(dim=-1).to(scores.dtype)
    return einsum(weights, v, "b h n m, b h m e -> b h n e")


SMALL_ATTENTION = 4
"""Query x key pairs up to which :func:`small_attention` replaces the fused kernel."""


def small_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention ``(b, h, n, e)`` written out with broadcasts, for a handful of keys.

    The IDM's and FDM's temporal blocks attend from one query to one or two keys, millions of
    times per step: the fused kernel's per-problem set-up then costs more than the arithmetic
    (engine_speed.md). Same result up to float rounding.
    """
    scores = (q[:, :, :, None] * k[:, :, None]).sum(-1) * q.shape[-1] ** -0.5
    weights = scores.softmax(dim=-1)
    return (weights[..., None] * v[:, :, None]).sum(-2)


class MLP(nn.Sequential):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__(nn.Linear(dim, dim * mult), nn.GELU(), nn.Linear(dim * mult, dim))


class SelfBlock(nn.Module):
    """x <- x + SelfAttention(LN x); x <- x + MLP(LN x)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), MLP(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, mask)
        return x + self.mlp(self.norm2(x))


class CrossBlock(nn.Module):
    """x <- x + CrossAttention(LN x, LN context); x <- x + MLP(LN x)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_q, self.norm_kv, self.attn = (
            nn.LayerNorm(dim),
            nn.LayerNorm(dim),
            Attention(dim, heads),
        )
        self.norm2, self.mlp = nn.LayerNorm(dim), MLP(dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x + self.attn(self.norm_q(x), self.norm_kv(context), mask)
        return x + self.mlp(self.norm2(x))
