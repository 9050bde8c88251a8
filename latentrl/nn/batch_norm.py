"""Batch statistics that span every torchrun process, so a DDP step equals a one-process step.

Under DistributedDataParallel each rank sees only its shard of the global batch. A plain
``BatchNorm1d`` would normalise with the shard's moments; here the moments are all-reduced
(autograd-aware, so the backward also flows through the other ranks' rows), which is what the
single process does on the concatenated batch. ``torch.nn.SyncBatchNorm`` does the same but
only on accelerators (it refuses CPU tensors), and the test suite runs DDP with gloo on CPU.
Without a process group (or with one process) the modules are the plain PyTorch ones.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn


def world_size() -> int:
    """Processes in the default group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def global_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over every process (``x`` itself in one process); gradients flow back."""
    return dist_fn.all_reduce(x) if world_size() > 1 else x


def global_row_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of rows ``(n, d) -> (d,)`` over the rows of every process."""
    if world_size() == 1:
        return x.mean(0)
    xf = x.float()
    count = xf.new_full((1,), float(x.shape[0]))
    stats = global_sum(torch.cat([xf.sum(0), count]))
    return (stats[:-1] / stats[-1]).to(x.dtype)


class SyncedBatchNorm1d(nn.BatchNorm1d):
    """``BatchNorm1d`` over ``(n, d)`` rows whose training statistics span every process.

    Same parameters, buffers and state-dict keys as ``nn.BatchNorm1d`` (saved runs load
    unchanged); evaluation uses the running statistics as usual.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or world_size() == 1:
            return super().forward(x)
        if x.ndim != 2:
            raise ValueError(f"SyncedBatchNorm1d takes (n, d) rows, got shape {tuple(x.shape)}")
        # Statistics in float32 whatever the input (bf16 would round the row count itself).
        xf = x.float()
        count = xf.new_full((1,), float(x.shape[0]))
        stats = global_sum(torch.cat([xf.sum(0), count]))
        n = stats[-1]
        mean = stats[:-1] / n
        centred = xf - mean
        # Two passes (mean, then squared deviations) rather than E[x^2] - E[x]^2: no cancellation.
        var = global_sum(centred.square().sum(0)) / n
        out = centred * torch.rsqrt(var + self.eps)
        if self.affine:
            out = out * self.weight + self.bias
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), float(n.detach()))
        return out.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, n: float) -> None:
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        self.num_batches_tracked.add_(1)
        # momentum None: a cumulative average, as in nn.BatchNorm1d.
        momentum = self.momentum
        factor = 1.0 / float(self.num_batches_tracked) if momentum is None else momentum
        unbiased = var * (n / max(n - 1.0, 1.0))
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
