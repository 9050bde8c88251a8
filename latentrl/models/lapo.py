"""LAPO-style monolithic latent action model (Schmidt & Jiang, 2024, "Learning to Act without
Actions"), written from the paper's description on this project's code path.

LAPO's recipe: an inverse dynamics model reads the frames ``o_{t-1}, o_t, o_{t+1}`` stacked along
channels through an IMPALA CNN and emits a quantised latent action made of several code
positions; a forward model (a UNet) predicts ``o_{t+1}`` from ``o_t`` and that latent; both are
trained together on the next-frame loss only. Here:

- **Frames.** The frame the CNNs see is the tokenizer's code-feature image ``(d, g, g)``: every
  token's frozen code feature (projected to ``d_model``, plus its learned position) at its cell.
  The tiny preset's tokenizer is a patch encoder with one token per cell, so this image holds
  exactly what the decoded frame holds (the decoded frame is a function of the codes) at one
  pixel per cell, without paying a pixel decoder at every step. Convolutions over it are
  pixel-space dynamics in LAPO's sense: no slots, no attention over entities.
- **Latent.** One scene latent action ``(b, t - 1, 1, d_a)``: an FSQ of ``len(action_levels)``
  dimensions, i.e. that many code positions of ``levels`` values each (LAPO: 8 positions of 64
  values, vector-quantised; FSQ has no codebook to collapse, and ``action_norm`` keeps every
  dimension's levels in use).
- **Forward model.** A small UNet on the frame at ``t`` whose every resolution adds a projection
  of the latent action; its output is the next frame's token features ``(b, n, d)``, decoded to
  codes by the shared aggregator and scored by the shared loss (as every model here).
- The first transition of a window has no ``o_{t-1}``; ``o_t`` stands in for it.
"""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import nn

from latentrl.models.base import LatentActionModel, LatentActions, States, bottleneck_to_latent
from latentrl.models.config import ModelConfig
from latentrl.nn.impala import ImpalaEncoder
from latentrl.quantize import BottleneckConfig, BottleneckOutput, LatentBottleneck

STACK = 3
"""Frames the inverse dynamics model reads: ``o_{t-1}, o_t, o_{t+1}``."""


class PixelIDM(nn.Module):
    """Frames ``(b, t, d, g, g)`` -> one quantised latent action per transition ``(b, t-1, 1, d_a)``."""

    def __init__(
        self,
        dim: int,
        channels: tuple[int, ...],
        bottleneck: BottleneckConfig,
        delta: bool = False,
    ) -> None:
        super().__init__()
        self.delta = delta
        self.encoder = ImpalaEncoder(STACK * dim, channels, dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.bottleneck = LatentBottleneck(dim, bottleneck)

    def forward(self, frames: torch.Tensor) -> BottleneckOutput:
        b = frames.shape[0]
        prev = torch.cat([frames[:, :1], frames[:, :-2]], dim=1)
        cur = frames[:, :-1]
        stacked = torch.cat([prev, cur, frames[:, 1:]], dim=2)  # (b, t-1, 3d, g, g)
        h = self.encoder(rearrange(stacked, "b t c h w -> (b t) c h w"))
        if self.delta:
            # Minus the features of the same frames had nothing moved (o_{t+1} = o_t): zero
            # wherever nothing changed, so the latent varies with the moves from the first step.
            still = torch.cat([prev, cur, cur], dim=2)
            h = h - self.encoder(rearrange(still, "b t c h w -> (b t) c h w"))
        # Global average over the pooled map: the latent sums what happened in each place
        # (which sprite moved how) without saying where, which the forward model knows from
        # frame t. With a flattened map the code names moves by location, and a per-agent
        # read-out of the code alone stays at chance (P2 in docs/research/strong_lam.md).
        h = self.head(h.mean(dim=(-2, -1)))
        return self.bottleneck(rearrange(h, "(b t) d -> b t 1 d", b=b))


class _ConvBlock(nn.Module):
    """GroupNorm -> SiLU -> 3x3 conv, twice, with a residual path; the condition scales and
    shifts the normalised features between the convolutions (FiLM, as diffusion UNets condition
    on time). A scale, not only a shift: whether a cell changes depends on what is in the cell
    *and* on the action, a product of the two."""

    def __init__(self, c_in: int, c_out: int, cond: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.cond = nn.Linear(cond, 2 * c_out)
        self.norm2 = nn.GroupNorm(min(8, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        scale, shift = rearrange(self.cond(cond), "b (two c) -> two b c 1 1", two=2)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(nn.functional.silu(h))
        return self.skip(x) + h


class FrameUNet(nn.Module):
    """Frame ``(B, d, g, g)`` and latent action ``(B, d_a)`` -> next frame ``(B, d, g, g)``.

    Down path: one block per entry of ``channels``, halving the side after each but the last;
    up path mirrors it with skip connections. The latent action enters as a map beside the input
    frame and conditions every block (FiLM), so the model can place a move at any resolution;
    the output is a residual on the input frame.
    """

    def __init__(self, dim: int, action_dim: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        cond = dim
        self.action_in = nn.Sequential(nn.Linear(action_dim, cond), nn.SiLU())
        # The latent also enters as a map at every cell of the input: the first convolution then
        # sees a cell's content and the action together (with FiLM alone, P3 in
        # docs/research/strong_lam.md, the UNet learned to predict without its latent).
        self.inp = nn.Conv2d(dim + cond, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        prev = channels[0]
        for ch in channels:
            self.down.append(_ConvBlock(prev, ch, cond))
            prev = ch
        self.mid = _ConvBlock(prev, prev, cond)
        self.up = nn.ModuleList()
        for ch in reversed(channels):
            self.up.append(_ConvBlock(prev + ch, ch, cond))
            prev = ch
        self.out = nn.Sequential(
            nn.GroupNorm(min(8, prev), prev), nn.SiLU(), nn.Conv2d(prev, dim, 1)
        )
        self.pool = nn.AvgPool2d(2, ceil_mode=True)

    def forward(self, frame: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        cond = self.action_in(action)
        side = frame.shape[-2:]
        h = self.inp(torch.cat([frame, repeat(cond, "b c -> b c h w", h=side[0], w=side[1])], 1))
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, cond)
            skips.append(h)
            if i < len(self.down) - 1:
                h = self.pool(h)
        h = self.mid(h, cond)
        for block in self.up:
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:
                h = nn.functional.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), cond)
        return frame + self.out(h)


class LAPO(LatentActionModel):
    """Monolithic: CNN inverse dynamics over 3 stacked frames, one scene latent, UNet forward."""

    def __init__(self, config: ModelConfig, code_features: torch.Tensor) -> None:
        super().__init__(config, code_features)
        d = config.d_model
        self.idm = PixelIDM(d, config.lapo_channels, config.bottleneck, delta=config.idm_delta)
        self.fdm = FrameUNet(d, config.bottleneck.action_dim, config.lapo_channels)

    def _image(self, tokens: torch.Tensor) -> torch.Tensor:
        return rearrange(tokens, "... (h w) d -> ... d h w", h=self.config.grid)

    def encode_states(self, codes: torch.Tensor) -> States:
        return States(self.embed_tokens(codes), None)

    def encode_next(self, codes: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(codes)

    def infer(self, states: torch.Tensor, true_actions: torch.Tensor | None) -> LatentActions:
        return bottleneck_to_latent(self.idm(self._image(states)))

    def predict_next(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """States ``(B, n, d)`` (tokens of frame t), actions ``(B, 1, d_a)`` -> ``(B, n, d)``."""
        nxt = self.fdm(self._image(states), actions[:, 0])
        return rearrange(nxt, "B d h w -> B (h w) d")

    def sample_latent_actions(
        self, batch: int, steps: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.idm.bottleneck.sample_prior((batch, steps, 1), generator)
