"""Stage 1: the frame tokenizer (IMPALA CNN encoder, FSQ, mirrored decoder; FLAM sec. 4.1).

Shapes: frames float ``(b, c, h, w)`` in [0, 1]; features ``(b, n, d)`` with
``n = (h / 2**s) * (w / 2**s)`` tokens in row-major order; code indices int64 ``(b, n)`` in
``[0, codebook_size)``. The latent action models only ever see indices and the features looked
up from them, so a dataset is encoded once and stage 2 never touches pixels.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from latentrl.checkpoint import load_weights
from latentrl.config import from_dict, opt
from latentrl.nn.impala import ImpalaDecoder, ImpalaEncoder, PatchDecoder, PatchEncoder
from latentrl.runs import read_json


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    """Architecture of the frame tokenizer."""

    encoder: Literal["impala", "patch"] = opt(
        "impala",
        "impala (overlapping CNN, the paper's) or patch (each token sees only its own patch)",
    )
    frame_size: int = opt(32, "frame height and width in pixels (square frames)")
    channels: int = opt(3, "image channels")
    stage_channels: tuple[int, ...] = opt(
        (32, 64),
        "channels of each IMPALA stage; each stage halves the resolution (patch encoder: the "
        "number of stages sets the patch size 2**stages and the last value its hidden width)",
    )
    z_channels: int = opt(64, "feature dimension d of a token (paper: 128)")
    fsq_levels: tuple[int, ...] = opt(
        (4, 4, 4, 4, 4),
        "FSQ levels per code dimension; codebook size is their product (paper: 1024)",
    )

    @property
    def downsample(self) -> int:
        return 2 ** len(self.stage_channels)

    @property
    def grid(self) -> int:
        """Tokens per side."""
        return self.frame_size // self.downsample

    @property
    def num_tokens(self) -> int:
        return self.grid**2

    @property
    def codebook_size(self) -> int:
        return math.prod(self.fsq_levels)

    def __post_init__(self) -> None:
        if self.frame_size % self.downsample:
            raise ValueError(
                f"frame_size {self.frame_size} is not divisible by 2**stages = {self.downsample}; "
                "change train_tokenizer.py --frame-size or the number of --stage-channels"
            )


class Tokenizer(nn.Module):
    """FSQ autoencoder over frames; its code indices are the latent action models' targets."""

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        self.config = config
        if config.encoder == "patch":
            width = config.stage_channels[-1]
            self.encoder: nn.Module = PatchEncoder(
                config.channels, config.downsample, width, config.z_channels
            )
            self.decoder: nn.Module = PatchDecoder(
                config.z_channels, config.downsample, width, config.channels
            )
        else:
            self.encoder = ImpalaEncoder(config.channels, config.stage_channels, config.z_channels)
            self.decoder = ImpalaDecoder(config.z_channels, config.stage_channels, config.channels)
        # Levels of 2 need FSQ's symmetric variant (the library refuses them otherwise).
        # Imported here: the library pulls in einx and torch._dynamo (about 1.8 s).
        from vector_quantize_pytorch import FSQ

        self.fsq = FSQ(
            levels=list(config.fsq_levels),
            dim=config.z_channels,
            preserve_symmetry=any(lv == 2 for lv in config.fsq_levels),
        )

    def encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames ``(b, c, h, w)`` -> (quantized features ``(b, n, d)``, indices ``(b, n)``)."""
        z = rearrange(self.encoder(frames), "b d h w -> b (h w) d")
        z_q, indices = self.fsq(z)
        return z_q, indices.long()

    def features_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices ``(..., n)`` -> quantized features ``(..., n, d)``."""
        # Flat: the library reads indices of 3+ dims as images and moves d to axis 1.
        features = self.fsq.indices_to_codes(indices.reshape(-1))
        return features.reshape(*indices.shape, features.shape[-1])

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Quantized features ``(b, n, d)`` -> frames ``(b, c, h, w)`` (unclamped)."""
        g = self.config.grid
        return self.decoder(rearrange(features, "b (h w) d -> b d h w", h=g, w=g))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices ``(b, n)`` -> frames ``(b, c, h, w)`` clamped to [0, 1]."""
        return self.decode(self.features_from_indices(indices)).clamp(0.0, 1.0)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct frames; returns (reconstruction ``(b, c, h, w)``, indices ``(b, n)``)."""
        z_q, indices = self.encode(frames)
        return self.decode(z_q), indices

    def loss(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """MSE reconstruction loss (FLAM eq. 1) and metrics (PSNR, codebook usage).

        Metrics are detached 0-dim tensors (no device sync; the training loop reads them at
        log steps)."""
        recon, indices = self(frames)
        mse = F.mse_loss(recon, frames)
        with torch.no_grad():
            clamped = F.mse_loss(recon.clamp(0, 1), frames)
            psnr = -10.0 * torch.log10(clamped.clamp_min(1e-10))
            size = self.config.codebook_size
            used = torch.zeros(size, device=indices.device).index_fill_(0, indices.flatten(), 1.0)
            usage = used.sum() / size
        return mse, {"mse": mse.detach(), "psnr": psnr, "codebook_usage": usage}


def load_tokenizer(run: Path, device: torch.device | str = "cpu") -> Tokenizer:
    """The tokenizer saved in a tokenizer run folder."""
    path = run / "tokenizer" / "config.json"
    cfg = from_dict(TokenizerConfig, read_json(path), source=path)
    tok = Tokenizer(cfg).to(device)
    load_weights(tok, run / "tokenizer" / "model.safetensors")
    return tok.eval()
