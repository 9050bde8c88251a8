"""Batch whitening (decorrelated batch normalisation, Huang et al. 2018) of a few features.

Rows ``(n, d) -> (n, d)`` with zero mean and identity covariance over the batch: Cholesky
whitening ``L^{-1} (x - mu)`` with ``L L^T = cov + eps I``; evaluation uses running moments.
Used before FSQ: per-dimension batch norm keeps every latent dimension in use, but two
dimensions can still be the same dimension (perfectly correlated), so that a 2D code lies on a
line and two moves share a code; whitening makes every direction of the code carry variance.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from einops import einsum
from torch import nn


def _local_row_mean(x: torch.Tensor) -> torch.Tensor:
    return x.mean(0)


class BatchWhitening(nn.Module):
    """Whiten ``(n, d)`` rows over the batch (training) or with running moments (evaluation)."""

    def __init__(
        self,
        dim: int,
        eps: float = 1e-3,
        momentum: float = 0.1,
        row_mean: Callable[[torch.Tensor], torch.Tensor] = _local_row_mean,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.momentum = momentum
        # How a mean over rows is taken: the plain one, or one over every torchrun process.
        self.row_mean = row_mean
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_cov", torch.eye(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"BatchWhitening({self.dim}) takes (n, {self.dim}) rows, got {tuple(x.shape)}"
            )
        xf = x.float()
        if self.training:
            mean = self.row_mean(xf)
            centred = xf - mean
            outer = einsum(centred, centred, "n i, n j -> n i j").flatten(1)
            cov = self.row_mean(outer).view(self.dim, self.dim)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_cov.lerp_(cov.detach(), self.momentum)
        else:
            mean, cov = self.running_mean, self.running_cov
            centred = xf - mean
        eye = torch.eye(self.dim, device=x.device, dtype=xf.dtype)
        chol = torch.linalg.cholesky(cov + self.eps * eye)
        white = torch.linalg.solve_triangular(chol, centred.T, upper=False).T
        return white.to(x.dtype)
