"""The aggregator: predicted states (slots or tokens) -> next-frame code indices (FLAM sec. 4.2).

Shapes: context ``(b, k, d)`` (K slots, or N tokens for the monolithic models); targets
``(b, n)`` code indices; logits per sub-token level ``(b, n, v_l)``.

Modes:
- ``parallel``: every patch query (its position) reads the context at once.
- ``autoregressive``: patch ``n`` also sees the codes of patches ``< n`` (causal self-attention
  over the patch sequence, as in the paper); decoding runs patch by patch.
Readouts:
- ``xattn``: patch queries cross-attend over the context (the paper's aggregator).
- ``mix``: each slot proposes a feature for every patch with a mixing logit; a softmax over
  slots per patch picks who explains it (slot-decoder style), which pushes one entity per slot.
- ``gauss``: the context carries a position per slot in its last 2 channels ``(b, k, d + 2)``
  (row, col in tokens); each patch takes a softmax over slots of
  ``-|x_n - c_k|^2 / (2 sigma_k^2) + b_k`` (``sigma_k``, ``b_k`` from the slot) and reads the
  mixed slot values plus its position: a slot draws around where it is predicted to be, so a
  position error costs loss and the gradient moves the slot's centroid.
Codes are predicted as hierarchical sub-tokens: a codebook of ``prod(subtokens)`` codes is a
sequence of small choices (1024 = 32 x 32), each conditioned on the previous ones.
``regression`` predicts the code's feature vector instead (MSE), decoded to the nearest code.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from einops import einsum, rearrange, repeat
from torch import nn

from latentrl.nn.blocks import MLP, CrossBlock, SelfBlock

AggregatorMode = Literal["parallel", "autoregressive"]
Readout = Literal["xattn", "mix", "gauss"]
Prediction = Literal["classification", "regression"]


def split_codes(codes: torch.Tensor, levels: tuple[int, ...]) -> list[torch.Tensor]:
    """Code indices ``(...)`` -> one index per sub-token level (most significant first)."""
    parts = []
    rest = codes
    for size in reversed(levels):
        parts.append(rest % size)
        rest = torch.div(rest, size, rounding_mode="floor")
    return parts[::-1]


def join_codes(parts: list[torch.Tensor], levels: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`split_codes`."""
    code = torch.zeros_like(parts[0])
    for part, size in zip(parts, levels, strict=True):
        code = code * size + part
    return code


class Aggregator(nn.Module):
    """Maps a set of predicted states to logits (or features) of the next frame's codes."""

    def __init__(
        self,
        dim: int,
        heads: int,
        num_tokens: int,
        code_features: torch.Tensor,
        subtokens: tuple[int, ...],
        mode: AggregatorMode = "parallel",
        readout: Readout = "xattn",
        prediction: Prediction = "classification",
        layers: int = 1,
        pos_channels: int = 0,
    ) -> None:
        super().__init__()
        codebook_size, code_dim = code_features.shape
        levels = subtokens if subtokens else (codebook_size,)
        if math.prod(levels) != codebook_size:
            raise ValueError(
                f"sub-token levels {levels} multiply to {math.prod(levels)}, not the tokenizer's "
                f"codebook size {codebook_size}; pass train_lam.py --subtokens whose product is {codebook_size}"
            )
        if readout == "gauss" and pos_channels != 2:
            raise ValueError("the gauss readout needs a (row, col) position per context element")
        self.levels = levels
        self.mode, self.readout, self.prediction = mode, readout, prediction
        # Context elements may carry a position in their last ``pos_channels`` channels.
        self.pos_channels = pos_channels
        self.num_tokens = num_tokens
        self.register_buffer("code_features", code_features.clone(), persistent=True)
        self.pos = nn.Parameter(torch.randn(num_tokens, dim) * 0.02)
        if mode == "autoregressive":
            self.start = nn.Parameter(torch.zeros(dim))
            self.code_in = nn.Linear(code_dim, dim)
            self.causal = nn.ModuleList(SelfBlock(dim, heads) for _ in range(layers))
        if readout == "xattn":
            self.cross = nn.ModuleList(CrossBlock(dim, heads) for _ in range(layers))
        elif readout == "gauss":
            grid = math.isqrt(num_tokens)
            if grid * grid != num_tokens:
                raise ValueError(f"gauss readout needs a square token grid, got {num_tokens}")
            rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
            coords = torch.stack([rows, cols], dim=-1).reshape(-1, 2).float()
            self.register_buffer("coords", coords, persistent=False)
            self.register_buffer(
                "freqs", torch.tensor([math.pi / 4, math.pi / 2, math.pi]), persistent=False
            )
            self.g_logsig, self.g_bias, self.g_value = (
                nn.Linear(dim, 1),
                nn.Linear(dim, 1),
                nn.Linear(dim, dim),
            )
            self.g_offset = nn.Linear(2 + 4 * len(self.freqs), dim)
            self.g_norm, self.g_mlp = nn.LayerNorm(dim), MLP(dim, mult=2)
        else:
            self.slot_mlp = MLP(dim, mult=2)
            self.alpha = nn.Linear(dim, 1)
        self.norm = nn.LayerNorm(dim)
        if prediction == "classification":
            self.heads = nn.ModuleList(nn.Linear(dim, size) for size in levels)
            self.level_embed = nn.ModuleList(nn.Embedding(size, dim) for size in levels[:-1])
        else:
            self.to_feature = nn.Linear(dim, code_dim)

    # -- queries -------------------------------------------------------------------------
    def _queries(self, context: torch.Tensor, prev_codes: torch.Tensor | None) -> torch.Tensor:
        """Per-patch queries ``(b, n', d)``; autoregressive mode shifts in the previous codes."""
        b = context.shape[0]
        if self.mode == "parallel":
            return repeat(self.pos, "n d -> b n d", b=b)
        assert prev_codes is not None
        n = prev_codes.shape[1] + 1
        shifted = torch.cat(
            [
                repeat(self.start, "d -> b 1 d", b=b),
                self.code_in(self.code_features[prev_codes]),
            ],
            dim=1,
        )
        x = shifted + self.pos[:n]
        mask = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        for block in self.causal:
            x = block(x, mask)
        return x

    def _offsets(self, centers: torch.Tensor) -> torch.Tensor:
        """Offsets ``x_n - c_k`` ``(b, k, n, 2)`` of every patch from every context position."""
        return self.coords[None, None] - centers[:, :, None]

    def gauss_weights(
        self, context: torch.Tensor, offsets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Gauss readout: each patch's softmax over slots ``(b, k, n)`` (context ``(b, k, d + 2)``;
        ``offsets`` from :meth:`_offsets` when the caller already has them)."""
        feats = context[..., :-2]
        if offsets is None:
            offsets = self._offsets(context[..., -2:])
        d2 = offsets.square().sum(-1)
        # log sigma clamped (sigma in [0.14, 20] tokens): an unbounded width destabilised training.
        inv_var = torch.exp(-2 * self.g_logsig(feats).clamp(-2.0, 3.0))
        return (-0.5 * d2 * inv_var + self.g_bias(feats)).softmax(dim=1)

    def _gauss_read(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Patch ``n`` reads ``sum_k m_kn (v(s_k) + W f(x_n - c_k))`` plus its query.

        ``f`` = offset and its sin/cos at a few frequencies: a patch next to an entity learns
        where it is relative to it (the tokenizer's codes of neighbouring cells depend on it).
        """
        n = queries.shape[1]
        offsets = self._offsets(context[..., -2:])
        weights = self.gauss_weights(context, offsets)[:, :, :n]
        offset = offsets[:, :, :n]
        angles = offset[..., None] * self.freqs  # (b, k, n, 2, f)
        fourier = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)
        rel = torch.cat([offset.clamp(-4, 4) / 4, fourier], dim=-1)
        # A product and a sum over slots: as an einsum this became a batched matmul of
        # (b * n) tiny outer products, the slowest op of a CPU step (engine_speed.md).
        mixed_rel = (weights[..., None] * rel).sum(dim=1)
        h = einsum(weights, self.g_value(context[..., :-2]), "b k n, b k d -> b n d")
        h = h + self.g_offset(mixed_rel) + queries
        return self.norm(h + self.g_mlp(self.g_norm(h)))

    def _read(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Queries ``(b, n, d)`` read the context ``(b, k, d)`` -> ``(b, n, d)``."""
        if self.readout == "gauss":
            return self._gauss_read(queries, context)
        if self.pos_channels:
            context = context[..., : -self.pos_channels]
        if self.readout == "xattn":
            x = queries
            for block in self.cross:
                x = block(x, context)
            return self.norm(x)
        # Slot mixture: every (slot, patch) pair proposes a feature and a logit.
        pair = rearrange(context, "b k d -> b k 1 d") + rearrange(queries, "b n d -> b 1 n d")
        feat = pair + self.slot_mlp(pair)
        weights = self.alpha(feat).softmax(dim=1)
        return self.norm((weights * feat).sum(dim=1))

    def hidden(self, context: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Patch features ``(b, n, d)``; autoregressive mode is teacher-forced on ``targets``."""
        prev = None
        if self.mode == "autoregressive":
            if targets is None:
                raise ValueError("autoregressive teacher forcing needs the target codes")
            prev = targets[:, :-1]
        return self._read(self._queries(context, prev), context)

    # -- classification over hierarchical sub-tokens --------------------------------------
    def level_logits(self, h: torch.Tensor, parts: list[torch.Tensor]) -> list[torch.Tensor]:
        """Logits of every level given the true earlier levels (teacher forcing within a code)."""
        out = []
        for i, head in enumerate(self.heads):
            out.append(head(h))
            if i < len(self.level_embed):
                h = h + self.level_embed[i](parts[i])
        return out

    def loss(
        self, context: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean over tokens of the per-token loss times ``weights`` ``(b, n)`` (default 1).

        The metric ``token_loss`` (unweighted mean) is a detached tensor: no device sync."""
        h = self.hidden(context, targets)
        if self.prediction == "regression":
            per_token = (self.to_feature(h) - self.code_features[targets]).square().mean(-1)
        else:
            parts = split_codes(targets, self.levels)
            logits = self.level_logits(h, parts)
            per_token = sum(
                F.cross_entropy(rearrange(lg, "b n v -> b v n"), part, reduction="none")
                for lg, part in zip(logits, parts, strict=True)
            )
        if weights is None:
            weights = torch.ones_like(per_token)
        # A plain mean over tokens (not divided by the weight sum): the mean of equal shards'
        # losses is then the global-batch loss, so DDP gradients equal single-process ones.
        loss = (per_token * weights).mean()
        return loss, {"token_loss": per_token.mean().detach()}

    def _decode_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """Greedy code choice ``(b, n)`` from patch features ``(b, n, d)``."""
        if self.prediction == "regression":
            feats = self.to_feature(h)
            dist = torch.cdist(feats, self.code_features.expand(h.shape[0], -1, -1))
            return dist.argmin(-1)
        parts: list[torch.Tensor] = []
        for i, head in enumerate(self.heads):
            parts.append(head(h).argmax(-1))
            if i < len(self.level_embed):
                h = h + self.level_embed[i](parts[i])
        return join_codes(parts, self.levels)

    @torch.no_grad()
    def generate(self, context: torch.Tensor) -> torch.Tensor:
        """Most likely next-frame codes ``(b, n)`` (patch by patch when autoregressive)."""
        if self.mode == "parallel":
            return self._decode_hidden(self._read(self._queries(context, None), context))
        b = context.shape[0]
        codes = torch.zeros(b, 0, dtype=torch.long, device=context.device)
        for _ in range(self.num_tokens):
            h = self._read(self._queries(context, codes), context)[:, -1:]
            codes = torch.cat([codes, self._decode_hidden(h)], dim=1)
        return codes
