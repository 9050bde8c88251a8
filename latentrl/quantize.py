"""Latent action bottlenecks: FSQ codes, Gaussian with beta-KL, sparse continuous.

All map ``(..., d_in)`` features to latent actions ``(..., d_a)`` and return an auxiliary loss:
- ``fsq``: finite scalar quantization (Mentzer et al.; FLAM ICLR): a discrete code per input,
  ``num_codes = prod(levels)``; aux loss 0.
- ``gaussian``: ``a = mu + sigma * eps`` while training, ``mu`` at evaluation; aux loss
  ``beta * KL(N(mu, sigma^2) || N(0, 1))`` summed over dims, averaged over inputs (FLAM arXiv).
- ``sparse``: deterministic ``a``; aux loss ``l1 * |a|`` plus variance/covariance
  regularisation so that sparsity cannot be reached by shrinking the scale (Garrido et al.).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
from einops import rearrange
from torch import nn

from latentrl.config import opt
from latentrl.nn.batch_norm import SyncedBatchNorm1d, global_row_mean
from latentrl.nn.whiten import BatchWhitening

BottleneckKind = Literal["fsq", "gaussian", "sparse"]

MAX_CATEGORICAL_CODES = 256
"""FSQ codebooks up to this size are read as categories (one-hot inputs, classes to predict);
larger ones (a monolithic model's joint-action code, 5^8) by their code vectors. Such a code
takes more values than the labelled or probed transitions: a one-hot reader meets mostly codes
it never saw and reads chance whatever the code carries, and a head over every code is larger
than the rest of the job, while the code vector exposes each FSQ dimension."""


@dataclasses.dataclass(frozen=True)
class BottleneckConfig:
    """How a latent action is constrained."""

    kind: BottleneckKind = opt(
        "fsq", "fsq (discrete codes), gaussian (beta-KL) or sparse (L1 + VC)"
    )
    fsq_levels: tuple[int, ...] = opt((5,), "FSQ levels; codebook size is their product")
    dim: int = opt(8, "latent action dimension for the continuous kinds")
    beta: float = opt(0.01, "weight of the KL term (gaussian)")
    center: float = opt(0.0, "weight of the batch-mean penalty on fsq pre-quantization values")
    norm: bool = opt(False, "fsq: batch-normalise pre-quantization values (no affine)")
    whiten: bool = opt(
        False, "fsq: whiten pre-quantization values over the batch (replaces norm when set)"
    )
    l1: float = opt(0.01, "weight of the L1 sparsity term (sparse)")
    vc: float = opt(0.01, "weight of the variance/covariance regulariser (sparse)")

    @property
    def action_dim(self) -> int:
        return len(self.fsq_levels) if self.kind == "fsq" else self.dim

    @property
    def num_codes(self) -> int | None:
        return math.prod(self.fsq_levels) if self.kind == "fsq" else None


@dataclasses.dataclass
class BottleneckOutput:
    """Latent actions ``(..., d_a)``, their code indices ``(...)`` (fsq only), aux loss."""

    actions: torch.Tensor
    indices: torch.Tensor | None
    aux_loss: torch.Tensor


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) summed over the last axis: ``(..., d) -> (...)``."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(-1)


def variance_covariance_loss(x: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """VICReg-style: hinge keeping each dim's std >= 1, plus squared off-diagonal covariance."""
    flat = rearrange(x, "... d -> (...) d")
    if flat.shape[0] < 2:
        return flat.new_zeros(())
    std = torch.sqrt(flat.var(0) + eps)
    var_term = torch.relu(1.0 - std).mean()
    centred = flat - flat.mean(0)
    cov = centred.T @ centred / (flat.shape[0] - 1)
    off = cov - torch.diag(torch.diag(cov))
    return var_term + off.square().sum() / flat.shape[1]


class LatentBottleneck(nn.Module):
    """Project features to a latent action and constrain it (see module docstring)."""

    def __init__(self, d_in: int, config: BottleneckConfig) -> None:
        super().__init__()
        self.config = config
        if config.kind == "fsq":
            self.proj = nn.Linear(d_in, len(config.fsq_levels))
            # Without a learnable scale or shift no dimension can drift into tanh saturation:
            # each keeps zero mean and unit variance over the batch, so its levels stay in use.
            # The statistics span every torchrun process (a DDP step = a one-process step).
            # Whitening also decorrelates the dimensions, so that two of them cannot become one
            # (a 2D code on a line, two moves sharing a code).
            d_a = len(config.fsq_levels)
            self.norm: nn.Module | None = None
            if config.whiten:
                self.norm = BatchWhitening(d_a, row_mean=global_row_mean)
            elif config.norm:
                self.norm = SyncedBatchNorm1d(d_a, affine=False)
            # Imported here: the library pulls in einx and torch._dynamo (about 1.8 s).
            from vector_quantize_pytorch import FSQ

            self.fsq = FSQ(
                levels=list(config.fsq_levels),
                preserve_symmetry=any(lv == 2 for lv in config.fsq_levels),
            )
        elif config.kind == "gaussian":
            self.proj = nn.Linear(d_in, 2 * config.dim)
        elif config.kind == "sparse":
            self.proj = nn.Linear(d_in, config.dim)
        else:
            raise ValueError(
                f"unknown bottleneck kind {config.kind!r}: use fsq, gaussian or sparse"
            )

    def forward(self, x: torch.Tensor) -> BottleneckOutput:
        cfg = self.config
        h = self.proj(x)
        if cfg.kind == "fsq":
            lead = h.shape[:-1]
            if self.norm is not None:
                h = self.norm(rearrange(h, "... d -> (...) d")).reshape(h.shape)
            codes, indices = self.fsq(rearrange(h, "... d -> (...) 1 d"))
            # A dimension whose values all sit deep in tanh saturation quantizes to one level
            # for every input and gets almost no gradient: a dead dimension (seen as FLAM runs
            # whose codes carried one bit). Centring each dimension's batch mean keeps the
            # levels in use; "no move" then naturally takes the middle level.
            aux = h.new_zeros(())
            if cfg.center > 0 and self.training:
                aux = cfg.center * global_row_mean(rearrange(h, "... d -> (...) d")).pow(2).sum()
            return BottleneckOutput(codes.reshape(*lead, -1), indices.reshape(lead).long(), aux)
        if cfg.kind == "gaussian":
            mu, logvar = h.chunk(2, dim=-1)
            logvar = logvar.clamp(-10.0, 10.0)
            a = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
            return BottleneckOutput(a, None, cfg.beta * gaussian_kl(mu, logvar).mean())
        aux = cfg.l1 * h.abs().mean() + cfg.vc * variance_covariance_loss(h)
        return BottleneckOutput(h, None, aux)

    def codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """FSQ indices ``(...)`` -> latent actions ``(..., d_a)``."""
        if self.config.kind != "fsq":
            raise ValueError("only the fsq bottleneck has code indices")
        # Flat: the library reads indices of 3+ dims as images and moves d to axis 1.
        codes = self.fsq.indices_to_codes(indices.reshape(-1))
        return codes.reshape(*indices.shape, codes.shape[-1])

    def sample_prior(
        self, shape: tuple[int, ...], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Latent actions ``(*shape, d_a)`` from the prior: uniform codes, or N(0, 1)."""
        device = self.proj.weight.device
        cfg = self.config
        if cfg.kind == "fsq":
            idx = torch.randint(0, cfg.num_codes or 1, shape, generator=generator)
            return self.codes_from_indices(idx.to(device))
        z = torch.randn(*shape, cfg.dim, generator=generator)
        return z.to(device)
