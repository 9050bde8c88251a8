"""A tiny tokenizer that matches ``tests.models.tiny``'s models: 16 codes, 8-dim features,
a 4 x 4 token grid over 16 x 16 frames (SSIM's 11-pixel window fits)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from latentrl.presets import get_preset
from latentrl.stages import train_model_stage, train_tokenizer_stage
from latentrl.tokenizer import Tokenizer, TokenizerConfig
from tests.models.tiny import CODE_DIM, CODEBOOK, GRID

TINY_TOKENIZER = TokenizerConfig(
    encoder="patch", frame_size=16, stage_channels=(8, 8), z_channels=CODE_DIM, fsq_levels=(4, 4)
)


def tiny_tokenizer(seed: int = 0) -> Tokenizer:
    """A randomly initialised tokenizer whose weights depend only on ``seed``."""
    torch.manual_seed(seed)
    tok = Tokenizer(TINY_TOKENIZER).eval()
    assert tok.config.codebook_size == CODEBOOK and tok.config.grid == GRID
    return tok


def tiny_runs(tmp: Path, kinds: tuple[str, ...]) -> dict[str, Path]:
    """A tokenizer run on 12 episodes of 12 steps of the tiny preset's data, and a 3-step run of
    each model in ``kinds`` on it: run folders for the script and library tests."""
    tiny = get_preset("tiny")
    tokenizer = train_tokenizer_stage(
        dataclasses.replace(tiny.data, episodes=12, steps=12),
        tiny.tokenizer,
        dataclasses.replace(tiny.tokenizer_train, steps=3, batch_size=8, media_every=0),
        root=tmp / "data",
        runs=tmp / "runs",
    )
    out = {"tokenizer": tokenizer.path, "data": tmp / "data", "tmp": tmp}
    for kind in kinds:
        out[kind] = train_model_stage(
            dataclasses.replace(tiny.model, model=kind),
            dataclasses.replace(tiny.train, steps=3, batch_size=4, media_every=0),
            dataclasses.replace(tiny.stage, probe_windows=8),
            tokenizer_run=tokenizer,
            runs=tmp / "runs",
        ).path
    return out
