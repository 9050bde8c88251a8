"""Slot attention (Locatello et al., 2020) with recursive initialisation across frames.

Shapes: inputs ``(b, n, d_in)``, slots ``(b, k, d)``, attention ``(b, k, n)`` (each input's
weights sum to 1 over slots: slots compete for inputs).

Two ways to start the first frame (``init``):

- ``learned``: K learned slot vectors, the same for every frame. They tend to split the frame
  into fixed regions or fixed contents, and two entities that start in one slot's share stay
  there: nothing in the loss pulls one of them out.
- ``seeded``: farthest-point seeding on per-token *seed features* (the caller's choice; the
  models pass the frozen tokenizer feature of each token's code, unit-normalised, beside a
  small multiple of its coordinates). The first seed is the token farthest from the frame's
  mean, each next one the token farthest from all seeds so far, so that every token that looks
  unlike the rest (an entity on a uniform background) seeds its own slot before a second seed
  lands on a look already seeded; the coordinates only break ties between tokens that look
  alike. The slots start as a learned map of their seed tokens, and every first-frame
  iteration adds a soft k-means term to the attention logits, ``-|f_n - f_seed|^2 / T``, so
  that a token stays with the seed that looks like it while the query-key product is still
  untrained (later frames start from the previous frame's slots, as in the paper).
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
from einops import einsum, repeat
from torch import nn

from latentrl.nn.blocks import MLP

SlotInit = Literal["learned", "seeded"]


def farthest_point_seeds(features: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``(b, k)`` of ``k`` tokens of ``features`` ``(b, n, d)`` by farthest-point sampling.

    Deterministic: the first seed is the token farthest from the mean token; ties go to the
    lowest index. Not differentiable (a selection); gradients reach the chosen features.
    """
    b, n, _ = features.shape
    if k > n:
        raise ValueError(f"cannot seed {k} slots from {n} tokens; use at most {n} slots")
    x = features.detach()
    mean = x.mean(dim=1, keepdim=True)
    nearest = (x - mean).pow(2).sum(-1)  # distance of each token to the chosen set so far
    seeds = []
    for _ in range(k):
        idx = nearest.argmax(dim=1)
        seeds.append(idx)
        chosen = x[torch.arange(b, device=x.device), idx]
        nearest = torch.minimum(nearest, (x - chosen[:, None]).pow(2).sum(-1))
    return torch.stack(seeds, dim=1)


def _full_precision(x: torch.Tensor) -> contextlib.AbstractContextManager[None]:
    """Autocast off for ``x``'s device while inside (a no-op context without autocast)."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()


class SlotAttention(nn.Module):
    """Iterative competitive attention of ``k`` slots over ``n`` inputs."""

    def __init__(
        self,
        num_slots: int,
        dim: int,
        d_in: int,
        logit_scale: float = 1.0,
        eps: float = 1e-8,
        init: SlotInit = "learned",
        seed_temperature: float = 0.05,
    ) -> None:
        super().__init__()
        self.num_slots = num_slots
        # Over a mostly uniform background the default softmax is nearly flat at init: every slot
        # averages all tokens and small entities get no gradient. A larger scale sharpens it.
        self.scale = logit_scale * dim**-0.5
        self.eps = eps
        self.init = init
        self.seed_temperature = seed_temperature
        if init == "learned":
            # Learned per-slot initial values: the recursion gives each slot an identity it keeps.
            self.init_slots = nn.Parameter(torch.randn(num_slots, dim) * dim**-0.5)
        elif init == "seeded":
            self.seed_in = nn.Linear(d_in, dim)
        else:
            raise ValueError(f"unknown slot init {init!r}; use 'learned' or 'seeded'")
        self.norm_in = nn.LayerNorm(d_in)
        self.to_k = nn.Linear(d_in, dim, bias=False)
        self.to_v = nn.Linear(d_in, dim, bias=False)
        self.norm_slots = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mult=2)

    def initial(self, batch: int) -> torch.Tensor:
        """The learned initial slots ``(b, k, d)`` (``init='learned'``)."""
        return repeat(self.init_slots, "k d -> b k d", b=batch)

    def _seed(self, x: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Seeded first slots ``(b, k, d)`` and the soft k-means logits ``(b, k, n)``."""
        idx = farthest_point_seeds(features, self.num_slots)
        seeds = x.gather(1, repeat(idx, "b k -> b k d", d=x.shape[-1]))
        f_seeds = features.gather(1, repeat(idx, "b k -> b k f", f=features.shape[-1]))
        sq = (features[:, None] - f_seeds[:, :, None]).pow(2).sum(-1)  # (b, k, n)
        return self.seed_in(seeds), -sq / self.seed_temperature

    def forward(
        self,
        inputs: torch.Tensor,
        slots: torch.Tensor | None,
        iters: int,
        seed_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Refine ``slots`` (or the first frame's init) for ``iters`` rounds; returns (slots, attn).

        ``seed_features`` ``(b, n, f)`` are needed to start a first frame with ``init='seeded'``.
        """
        b = inputs.shape[0]
        x = self.norm_in(inputs)
        with _full_precision(inputs):
            k = self.to_k(x.float())
        v = self.to_v(x)  # after k: the allocation order sets fp32's rounding (keep it)
        bias = None
        if slots is None and self.init == "seeded":
            if seed_features is None:
                raise ValueError("seeded slot init needs seed_features for the first frame")
            slots, bias = self._seed(x, seed_features)
        elif slots is None:
            slots = self.initial(b)
        attn = inputs.new_zeros(b, self.num_slots, inputs.shape[1])
        for _ in range(iters):
            with _full_precision(inputs):
                # The competition in fp32 under bf16 autocast: with a sharp softmax (scale 10)
                # over slots whose keys nearly tie, bf16 logits (3 significant digits) let an
                # entity hop between slots from frame to frame, which the next-frame loss does
                # not see and a planner that follows a slot over time does.
                q = self.to_q(self.norm_slots(slots.float()))
                logits = einsum(q, k, "b k d, b n d -> b k n") * self.scale
                if bias is not None:
                    logits = logits + bias
                attn = logits.softmax(dim=1) + self.eps
            weights = attn / attn.sum(dim=-1, keepdim=True)
            updates = einsum(weights, v, "b k n, b n d -> b k d")
            slots = self.gru(updates.flatten(0, 1), slots.flatten(0, 1)).view_as(slots)
            slots = slots + self.mlp(self.norm_mlp(slots))
        return slots, attn
