"""CUDA training: a few bf16 steps of every model, eager and compiled, and a 2-GPU DDP step.

Marked ``gpu`` (deselected by default; run with ``python -m pytest -m gpu``) and skipped where
no CUDA device is visible, so the suite stays green on the CPU-only machines.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from latentrl.data.codes import CodeCache
from latentrl.data.device_codes import DeviceCodes
from latentrl.distributed import DistInfo
from latentrl.train import TrainConfig, train
from tests.models.tiny import ACTIONS, AGENTS, CODEBOOK, KINDS, TOKENS, tiny_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
WINDOW = 3


def cache() -> CodeCache:
    rng = np.random.default_rng(0)
    frames = 6 * 8
    codes = rng.integers(0, CODEBOOK, (frames, TOKENS)).astype(np.int16)
    actions = rng.integers(0, ACTIONS, (frames, AGENTS)).astype(np.int64)
    return CodeCache(codes, np.arange(0, frames + 1, 8, dtype=np.int64), actions)


def config(**changes: Any) -> TrainConfig:
    base = TrainConfig(
        steps=4,
        batch_size=8,
        warmup_steps=1,
        log_every=2,
        eval_every=10**6,
        checkpoint_every=10**6,
        media_every=0,
    )
    return dataclasses.replace(base, **changes)


def run(kind: str, device: str, tmp: Path, **changes: Any) -> list[float]:
    model = tiny_model(kind)
    codes = DeviceCodes(cache(), WINDOW, device)
    labels = kind == "wm"

    def sample(step: int, gen: torch.Generator) -> Any:
        return codes.sample(8, gen, labels=labels)

    cfg = config(device=device, **changes)
    result = train(model, sample, cfg, tmp, DistInfo(0, 1, torch.device(device)))
    assert next(model.parameters()).device.type == torch.device(device).type
    return result.losses


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_few_bf16_steps_on_cuda_match_fp32_on_cpu(
    kind: str, compiled: bool, tmp_path: Path
) -> None:
    from torch._dynamo.utils import counters

    counters.clear()
    losses = run(kind, "cuda", tmp_path / "gpu", bf16=True, compile=compiled)
    reference = run(kind, "cpu", tmp_path / "cpu", bf16=False)
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    # Same seed, same batches: the first loss (before any update) within bf16 rounding.
    assert losses[0] == pytest.approx(reference[0], rel=5e-2)
    if compiled:
        assert not counters["graph_break"], dict(counters["graph_break"])


def _ddp_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=2)
    try:
        device = torch.device("cuda", rank)
        model = tiny_model("flam")
        codes = DeviceCodes(cache(), WINDOW, device)
        cfg = config(steps=2, device=f"cuda:{rank}", bf16=False)
        train(
            model,
            lambda s, g: codes.sample(8, g),
            cfg,
            Path(out) / f"run{rank}",
            DistInfo(rank, 2, device),
        )
        params = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(params, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_a_two_gpu_ddp_run_equals_one_process_on_the_global_batch(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    model = tiny_model("flam")
    codes = DeviceCodes(cache(), WINDOW, "cuda:0")
    cfg = config(steps=2, device="cuda:0", bf16=False)
    train(
        model,
        lambda s, g: codes.sample(8, g),
        cfg,
        tmp_path / "single",
        DistInfo(0, 1, torch.device("cuda:0")),
    )
    for name, value in model.state_dict().items():
        for params in ranks:
            torch.testing.assert_close(params[name], value.cpu(), atol=1e-5, rtol=1e-4, msg=name)
