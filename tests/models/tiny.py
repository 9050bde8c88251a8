"""Tiny stage-2 configurations shared by the model and training tests.

Codebook of 16 codes (sub-tokens 4 x 4) with 8-dim features, a 4 x 4 token grid, width 32,
2 heads, 3 slots, 2 agents with 5 actions: every forward pass takes milliseconds on one core.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from latentrl.models import LatentActionModel, ModelConfig, build_model
from latentrl.types import CodeBatch

CODEBOOK = 16
CODE_DIM = 8
GRID = 4
TOKENS = GRID * GRID
SLOTS = 3
AGENTS = 2
ACTIONS = 5
KINDS = ("flam", "lam", "lapo", "oclam", "wm")
UNIFORM_CE = 2 * math.log(4)
"""Cross-entropy of a uniform guess over the sub-tokens (4 x 4): an untrained model's level."""


def near_uniform(ce: float) -> bool:
    """An untrained predictor's token cross-entropy: about that of a uniform guess (its random
    logits add a little, measured 1.01-1.30x over seeds 0-2); a model that leaks the target or
    whose logits blow up at initialisation lands far outside."""
    return 0.9 * UNIFORM_CE <= ce <= 1.35 * UNIFORM_CE


TINY = ModelConfig(
    d_model=32,
    heads=2,
    blocks=1,
    num_slots=SLOTS,
    subtokens=(4, 4),
    num_agents=AGENTS,
    agent_actions=ACTIONS,
    codebook_size=CODEBOOK,
    code_dim=CODE_DIM,
    grid=GRID,
)


def code_features(seed: int = 0) -> torch.Tensor:
    """A fixed stand-in for the tokenizer's code feature table ``(16, 8)``."""
    return torch.randn(CODEBOOK, CODE_DIM, generator=torch.Generator().manual_seed(seed))


def tiny_config(model: str = "flam", **changes: Any) -> ModelConfig:
    return dataclasses.replace(TINY, model=model, **changes)


def tiny_model(model: str = "flam", seed: int = 0, **changes: Any) -> LatentActionModel:
    """A tiny model whose initial weights depend only on ``seed``."""
    torch.manual_seed(seed)
    return build_model(tiny_config(model, **changes), code_features())


def random_batch(b: int = 2, t: int = 3, seed: int = 1) -> CodeBatch:
    """Random codes ``(b, t, 16)``, true actions ``(b, t - 1, 2)`` and positions ``(b, t, 2, 2)``."""
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, CODEBOOK, (b, t, TOKENS), generator=gen)
    actions = torch.randint(0, ACTIONS, (b, t - 1, AGENTS), generator=gen)
    positions = torch.randint(0, GRID, (b, t, AGENTS, 2), generator=gen)
    return CodeBatch(codes, actions, positions)
