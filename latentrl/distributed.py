"""torchrun detection: the same script runs on one process or under DistributedDataParallel.

``torchrun --nproc-per-node 2 experiments/train_lam.py ...`` sets ``WORLD_SIZE``/``RANK``; we
then join the process group (gloo on CPU, NCCL on CUDA). Every rank draws the same global batch
and keeps its own rows, so a DDP step equals a single-process step on the global batch (batch
statistics included: :mod:`latentrl.nn.batch_norm`). Rank 0 alone generates data and creates and
writes run folders; the other ranks wait for it (:func:`main_first`, :func:`from_main`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """Where this process sits: its rank, the world size and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "a CUDA device was asked for (train_*.py --device cuda) but none is visible; "
            "use --device cpu"
        )
    return device


def setup(device_name: str = "auto") -> DistInfo:
    """Join the torchrun process group if there is one; pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo(0, 1, resolve_device(device_name))
    rank = int(os.environ["RANK"])
    device = resolve_device(device_name)
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, device)


def shard_rows(x: torch.Tensor | None, info: DistInfo) -> torch.Tensor | None:
    """This rank's rows of a global batch (rows ``rank::world``)."""
    if x is None or not info.enabled:
        return x
    if x.shape[0] % info.world_size:
        raise ValueError(
            f"global batch {x.shape[0]} is not divisible by {info.world_size} processes; "
            "change train_*.py --batch-size"
        )
    return x[info.rank :: info.world_size]


def barrier(info: DistInfo) -> None:
    """Wait until every rank gets here (nothing to wait for in one process)."""
    if info.enabled:
        dist.barrier()


@contextlib.contextmanager
def main_first(info: DistInfo) -> Iterator[None]:
    """Rank 0 runs the block first; the other ranks wait, then run it (finding its results).

    For work with side effects on disk (generating datasets): only rank 0 writes, the others
    then read what it wrote. If rank 0 fails, torchrun stops the waiting ranks.
    """
    if not info.is_main:
        barrier(info)
    yield
    if info.is_main:
        barrier(info)


def from_main(value: T, info: DistInfo) -> T:
    """Rank 0's ``value`` on every rank (e.g. the run folder only rank 0 created)."""
    if not info.enabled:
        return value
    box = [value if info.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
