"""A :class:`~latentrl.data.codes.CodeCache` held on the training device, for batch sampling.

Stage 2 draws one batch of windows per step. Sampling from the numpy cache costs a fancy index,
an int16 -> int64 copy and a host-to-device transfer every step; here the codes (and labels),
the valid window starts and the window offsets live on the device once, and a step only moves
its ``batch`` random start picks there.

The picks are drawn exactly as :meth:`CodeCache.sample` draws them (``torch.randint`` over the
valid starts with the step's CPU generator), so both give the same batch for the same
generator: a resumed run and a run from before this sampler see the same windows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from latentrl.data.codes import CodeCache
from latentrl.types import CodeBatch


class DeviceCodes:
    """The codes of a :class:`CodeCache` on ``device``; samples windows ``(b, window, n)``."""

    def __init__(self, cache: CodeCache, window: int, device: torch.device | str) -> None:
        self.window = window
        self.device = torch.device(device)
        self.codes = torch.from_numpy(cache.codes.astype("int64")).to(self.device)
        self.starts = torch.from_numpy(cache.starts(window)).to(self.device)
        self.offsets = torch.arange(window, device=self.device)
        self.actions = (
            None if cache.actions is None else torch.from_numpy(cache.actions).to(self.device)
        )
        self.positions = (
            None if cache.positions is None else torch.from_numpy(cache.positions).to(self.device)
        )

    def __len__(self) -> int:
        """Number of valid window starts."""
        return len(self.starts)

    def windows(self, picks: torch.Tensor, labels: bool = False) -> CodeBatch:
        """The windows at positions ``picks`` ``(b,)`` of the valid-start table."""
        idx = self.starts[picks.to(self.device, non_blocking=True)][:, None] + self.offsets
        actions = positions = None
        if labels and self.actions is not None:
            actions = self.actions[idx[:, :-1]]
        if labels and self.positions is not None:
            positions = self.positions[idx]
        return CodeBatch(self.codes[idx], actions, positions)

    def sample(self, batch: int, generator: torch.Generator, labels: bool = False) -> CodeBatch:
        """A random batch of windows: the same picks as ``CodeCache.sample`` with ``generator``."""
        picks = torch.randint(len(self.starts), (batch,), generator=generator)
        return self.windows(picks, labels=labels)

    def sampler(
        self, batch: int, labels: bool = False
    ) -> Callable[[int, torch.Generator], CodeBatch]:
        """The training loop's ``sample(step, generator)``: :meth:`sample` of ``batch`` windows."""

        def sample(step: int, generator: torch.Generator) -> CodeBatch:
            return self.sample(batch, generator, labels=labels)

        return sample
