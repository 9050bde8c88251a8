"""IMPALA-style convolutional encoder and its mirrored decoder (Espeholt et al., 2018; LAPO).

Shapes: encoder ``(b, c, h, w) -> (b, d, h / 2**s, w / 2**s)`` for ``s`` stages;
decoder ``(b, d, h', w') -> (b, c, h' * 2**s, w' * 2**s)``.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """Pre-activation residual block of two 3x3 convolutions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ImpalaEncoder(nn.Module):
    """Stages of conv -> max-pool (stride 2) -> two residual blocks, then a 1x1 projection."""

    def __init__(
        self, in_channels: int, stage_channels: tuple[int, ...], out_channels: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for ch in stage_channels:
            layers += [
                nn.Conv2d(prev, ch, 3, padding=1),
                nn.MaxPool2d(3, stride=2, padding=1),
                ResidualBlock(ch),
                ResidualBlock(ch),
            ]
            prev = ch
        layers += [nn.ReLU(), nn.Conv2d(prev, out_channels, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ImpalaDecoder(nn.Module):
    """Mirror of :class:`ImpalaEncoder`: residual blocks then nearest upsampling per stage."""

    def __init__(
        self, in_channels: int, stage_channels: tuple[int, ...], out_channels: int
    ) -> None:
        super().__init__()
        chans = tuple(reversed(stage_channels))
        layers: list[nn.Module] = [nn.Conv2d(in_channels, chans[0], 1)]
        prev = chans[0]
        for ch in chans:
            layers += [
                nn.Conv2d(prev, ch, 3, padding=1),
                ResidualBlock(ch),
                ResidualBlock(ch),
                nn.Upsample(scale_factor=2, mode="nearest"),
            ]
            prev = ch
        layers += [nn.ReLU(), nn.Conv2d(prev, out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ChannelNorm(nn.Module):
    """LayerNorm over channels at every position of ``(b, c, h, w)``: patches stay independent."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class PatchEncoder(nn.Module):
    """Non-overlapping patches: a ``p x p`` stride-``p`` convolution then per-patch 1x1 layers.

    Normalisation before each activation keeps units from dying (seen without it: every
    pre-activation went negative after an lr spike and the gradient became exactly zero).
    Each token sees only its own patch, so a token's code changes only where its pixels change
    (with IMPALA's overlapping receptive field a moving sprite also changes its neighbours' codes).
    """

    def __init__(self, in_channels: int, patch: int, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, patch, stride=patch),
            ChannelNorm(hidden),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 1),
            ChannelNorm(hidden),
            nn.GELU(),
            nn.Conv2d(hidden, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PatchDecoder(nn.Module):
    """Mirror of :class:`PatchEncoder`: per-patch 1x1 layers then a stride-``p`` transposed conv."""

    def __init__(self, in_channels: int, patch: int, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1),
            ChannelNorm(hidden),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 1),
            ChannelNorm(hidden),
            nn.GELU(),
            nn.ConvTranspose2d(hidden, out_channels, patch, stride=patch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
