"""Training-step time of the latent action models under one preset, side by side, as a table.

    python experiments/bench_models.py --preset tiny --threads 1 [--models flam lam lapo]

Times one optimiser step (loss, backward, AdamW) of each model on a batch of the preset's shape
(codebook, grid, window, batch size of the tiny tokenizer: 1024 codes, 8 x 8 tokens), each model
with its own preset settings (``Preset.model_for``). Models are interleaved over ``--rounds`` so
that machine noise hits every figure alike; each figure is the median over rounds of the median
step time of a round. The last columns give the ratio to the first model and the steps that fit
in the first model's step budget (its preset steps): the equal-wall-time step count.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from latentrl.models import build_model
from latentrl.presets import PRESETS, Preset, get_preset
from latentrl.types import CodeBatch

CODEBOOK, CODE_DIM, GRID = 1024, 32, 8
"""The tiny tokenizer's codebook, feature size and token grid (``/work/runs`` tokenizer runs)."""


def step_timer(kind: str, preset_name: str, seed: int) -> tuple[Callable[[], float], Preset]:
    preset = get_preset(preset_name)
    cfg = dataclasses.replace(
        preset.model_for(kind), codebook_size=CODEBOOK, code_dim=CODE_DIM, grid=GRID
    )
    torch.manual_seed(seed)
    model = build_model(cfg, torch.randn(CODEBOOK, CODE_DIM))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(seed)
    b, t = preset.train_for(kind).batch_size, preset.stage.window
    batch = CodeBatch(torch.randint(0, CODEBOOK, (b, t, GRID * GRID), generator=gen))

    def step() -> float:
        start = time.perf_counter()
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    return step, preset


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--models", nargs="+", default=["flam", "lam", "lapo"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    timers = {k: step_timer(k, args.preset, args.seed) for k in args.models}
    for step, _ in timers.values():
        step()  # warm-up (allocations, first-call overheads)
    rounds: dict[str, list[float]] = {k: [] for k in args.models}
    for _ in range(args.rounds):
        for kind, (step, _) in timers.items():
            rounds[kind].append(float(np.median([step() for _ in range(args.steps)])))
    first = args.models[0]
    base = float(np.median(rounds[first]))
    budget = get_preset(args.preset).train_for(first).steps
    print(
        f"preset {args.preset}, {args.threads} thread(s), {platform.machine()} CPU, "
        f"{args.rounds} rounds x {args.steps} steps"
    )
    print(f"| model | s/step (median) | x {first} | steps in {first}'s {budget}-step wall |")
    print("|---|---:|---:|---:|")
    for kind in args.models:
        med = float(np.median(rounds[kind]))
        print(f"| {kind} | {med:.4f} | {med / base:.2f} | {int(budget * base / med)} |")


if __name__ == "__main__":
    main()
