"""The training loop shared by the tokenizer and every latent action model.

Reads top to bottom like cleanrl: seed, build the optimizer, loop (sample, loss, step, log),
checkpoint, save. Models expose ``loss(batch) -> (scalar, dict of metrics)``. Each step ``s``
draws its batch from a generator seeded by ``(seed, s)`` and reseeds torch's global RNG from the
same pair, so a run resumed from a checkpoint reproduces the uninterrupted losses exactly.

A step never waits for the device: the loss, the gradient norm and the model's metrics stay
tensors (metrics may be 0-dim tensors or floats) and are read only at log steps, where the
losses of every step since the last log are fetched at once. That keeps a CUDA queue full and
lets ``--compile`` trace the whole loss without graph breaks.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from latentrl.checkpoint import load_checkpoint, save_checkpoint
from latentrl.config import opt
from latentrl.distributed import DistInfo, shard_rows
from latentrl.nn.running_stats import recalibrate_running_stats


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and logging settings."""

    steps: int = opt(2000, "optimizer steps")
    batch_size: int = opt(32, "global batch size (split across torchrun processes)")
    lr: float = opt(1e-3, "peak learning rate (AdamW)")
    weight_decay: float = opt(0.01, "AdamW weight decay")
    warmup_steps: int = opt(100, "linear warmup steps before the cosine decay")
    min_lr_ratio: float = opt(0.1, "final learning rate as a fraction of --lr")
    grad_clip: float = opt(1.0, "clip the global gradient norm to this value (0 disables)")
    seed: int = opt(0, "seed of data sampling, initialisation and model noise")
    log_every: int = opt(25, "steps between scalar logs")
    eval_every: int = opt(500, "steps between evaluations (probe, validation metrics)")
    checkpoint_every: int = opt(500, "steps between checkpoints (atomic; --resume reads them)")
    media_every: int = opt(1000, "steps between rollout GIFs in tensorboard (0 disables)")
    device: str = opt("auto", "auto, cpu, cuda or cuda:N")
    bf16: bool = opt(
        True,
        "bf16 autocast on CUDA, and on a CPU with --cpu-bf16; results.json records the precision "
        "a run used",
    )
    cpu_bf16: bool = opt(
        False,
        "with --bf16, also autocast on a CPU with native bf16 matmuls (AVX512-BF16 or AMX); off "
        "by default: it made the one-agent planner test fail (docs/research/engine_speed.md)",
    )
    compile: bool = opt(False, "torch.compile the loss (CPU and CUDA; compiling takes a while)")
    threads: int = opt(0, "CPU threads for torch (0 = torch's default, one per core)")


class _LossModule(nn.Module):
    """DDP hooks run in ``forward``: route the model's ``loss`` through it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        return self.model.loss(batch)  # type: ignore[operator]


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warmup to 1, then cosine decay to ``min_lr_ratio`` at the last step."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (
        1 + math.cos(math.pi * progress)
    )


def step_seed(seed: int, step: int) -> int:
    """A per-step seed that differs across runs and steps and fits in 63 bits."""
    return (seed * 1_000_003 + step * 7_919 + 12_345) % (2**63 - 1)


def _shard(batch: Any, info: DistInfo) -> Any:
    if isinstance(batch, torch.Tensor):
        return shard_rows(batch, info)
    return type(batch)(*(shard_rows(x, info) for x in batch))


RECAL = 20
"""Training batches whose moments replace the running ones at each evaluation step
(:mod:`latentrl.nn.running_stats`): 20 x 32 windows for the tiny preset."""


def _recalibration_batch(
    sample_batch: Callable[[int, torch.Generator], Any], config: TrainConfig, info: DistInfo, i: int
) -> Any:
    """Batch ``i`` of a recalibration: drawn like a training batch from its own generator, so
    the training batches are untouched."""
    generator = torch.Generator().manual_seed(step_seed(config.seed, -1 - i))
    return _to_device(_shard(sample_batch(-1 - i, generator), info), info.device)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    return type(batch)(*(None if x is None else x.to(device, non_blocking=True) for x in batch))


def make_optimizer(
    model: nn.Module, config: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW; its fused kernel (one call for every parameter) on CPU and CUDA.

    The default on CPU is a Python loop over parameters, a dozen small ops each: a tenth of a
    tiny FLAM step (docs/research/engine_speed.md). Same update rule, same hyperparameters.
    """
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused
    )


def clip_grad_norm(model: nn.Module, max_norm: float) -> torch.Tensor:
    """Scale all gradients so that their global norm is at most ``max_norm``; returns the norm.

    ``torch.nn.utils.clip_grad_norm_``'s rule (coefficient ``max_norm / (norm + 1e-6)``, capped
    at 1) with the multi-tensor kernels on every device: on CPU the library falls back to one
    norm and one multiply per parameter. No host sync: the norm stays a tensor.
    """
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (norm + 1e-6)).clamp(max=1.0))
    return norm


def _tag(name: str) -> str:
    return f"losses/{name}" if "loss" in name else f"charts/{name}"


@dataclasses.dataclass
class TrainResult:
    """What a run leaves in memory: per-step losses and the last evaluation."""

    losses: list[float]
    last_eval: dict[str, float]
    steps_per_s: float
    precision: str = "fp32"
    """``"bf16"`` (autocast) or ``"fp32"``: what the training steps computed in."""


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matmuls natively: CUDA, or a CPU whose oneDNN has bf16
    kernels (AVX512-BF16 or AMX). Elsewhere bf16 is emulated and slower than fp32, so training
    keeps fp32 there even with ``cpu_bf16`` (and records it: :attr:`TrainResult.precision`)."""
    if device.type == "cuda":
        return True
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def train(
    model: nn.Module,
    sample_batch: Callable[[int, torch.Generator], Any],
    config: TrainConfig,
    run_dir: Path,
    info: DistInfo,
    evaluate: Callable[[int], dict[str, float]] | None = None,
    media: Callable[[int, SummaryWriter], None] | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    checkpoint_state: Callable[[], dict[str, Any]] | None = None,
) -> TrainResult:
    """Train ``model`` for ``config.steps`` steps; checkpoints go to ``run_dir/checkpoints``.

    ``sample_batch(step, generator)`` returns the global batch of that step (on CPU).
    ``stop_after`` ends this call early (as if killed) for resume tests and time budgets.
    ``checkpoint_state()`` adds JSON-able entries to each checkpoint's state (a stage's curve
    and wall time so far, read back on resume: :func:`latentrl.checkpoint.read_state`).

    Over 80 lines on purpose: the order of sampling, stepping, logging, evaluating and
    checkpointing inside the loop is the exact-resume contract (a resumed run draws the same
    batches and reaches the same losses), so the loop is kept whole rather than split across
    helpers that would hide that order.
    """
    device = info.device
    model.to(device)
    optimizer = make_optimizer(model, config, device)
    ckpt_dir = run_dir / "checkpoints" / "latest"
    start = 0
    if resume:
        state = load_checkpoint(ckpt_dir, model, optimizer)
        start = int(state["step"])
    net: nn.Module = _LossModule(model)
    if info.enabled:
        net = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile:
        net = torch.compile(net)  # type: ignore[assignment]
    autocast = config.bf16 and (device.type == "cuda" or (config.cpu_bf16 and native_bf16(device)))
    writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start) if info.is_main else None
    end = config.steps if stop_after is None else min(config.steps, stop_after)
    losses: list[float] = []
    pending: list[torch.Tensor] = []  # this log interval's losses, still on the device
    last_eval: dict[str, float] = {}
    t0, tick_step, tick_time = time.perf_counter(), start, time.perf_counter()
    bar = tqdm(
        range(start, end),
        initial=start,
        total=config.steps,
        disable=not info.is_main,
        desc=f"train {run_dir.name}",
        dynamic_ncols=True,
    )
    model.train()
    for step in bar:
        seed = step_seed(config.seed, step)
        generator = torch.Generator().manual_seed(seed)
        # Every rank draws the same global batch but its own model noise (dropout, sampling).
        torch.manual_seed(seed + info.rank)
        batch = _to_device(_shard(sample_batch(step, generator), info), device)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * lr_factor(step, config)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss, metrics = net(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = clip_grad_norm(model, config.grad_clip) if config.grad_clip > 0 else None
        optimizer.step()
        pending.append(loss.detach())
        done = step + 1
        if done % config.log_every == 0 or done == end:
            # The one device sync of a log interval: every pending loss at once.
            losses.extend(torch.stack(pending).float().tolist())
            pending.clear()
        if writer is not None and (done % config.log_every == 0 or done == end):
            now = time.perf_counter()
            rate = (done - tick_step) / max(now - tick_time, 1e-9)
            tick_step, tick_time = done, now
            writer.add_scalar("losses/loss", losses[-1], done)
            for name, value in metrics.items():
                writer.add_scalar(_tag(name), float(value), done)
            writer.add_scalar(
                "charts/grad_norm", float("nan") if grad_norm is None else grad_norm.item(), done
            )
            writer.add_scalar("charts/lr", optimizer.param_groups[0]["lr"], done)
            writer.add_scalar("charts/steps_per_s", rate, done)
            writer.add_scalar("charts/samples_per_s", rate * config.batch_size, done)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", sps=f"{rate:.1f}")
        at_eval = done % config.eval_every == 0 or done == config.steps
        if at_eval:
            # Every rank (the synced statistics are collectives); before evaluation and the
            # checkpoint, so both see running moments of the weights as they are now.
            recalibrate_running_stats(
                model, lambda i: net(_recalibration_batch(sample_batch, config, info, i)), RECAL
            )
        if evaluate is not None and info.is_main and at_eval:
            model.eval()
            with torch.no_grad():
                last_eval = evaluate(done)
            model.train()
            if writer is not None:
                for name, value in last_eval.items():
                    writer.add_scalar(f"eval/{name}", value, done)
        if (
            media is not None
            and writer is not None
            and config.media_every > 0
            and (done % config.media_every == 0 or done == config.steps)
        ):
            model.eval()
            with torch.no_grad():
                media(done, writer)
            model.train()
        if info.is_main and (done % config.checkpoint_every == 0 or done == end):
            extra = checkpoint_state() if checkpoint_state is not None else {}
            save_checkpoint(ckpt_dir, model, optimizer, {**extra, "step": done})
    elapsed = time.perf_counter() - t0
    if writer is not None:
        writer.close()
    model.eval()
    precision = "bf16" if autocast else "fp32"
    return TrainResult(losses, last_eval, (end - start) / max(elapsed, 1e-9), precision)
