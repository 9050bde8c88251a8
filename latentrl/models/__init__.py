"""Latent action models on one interface: FLAM and the LAM / LAPO / OC+LAM / WM baselines."""

from __future__ import annotations

import torch

from latentrl.models.base import LatentActionModel, LatentActions, States
from latentrl.models.config import ModelConfig
from latentrl.models.flam import FLAM
from latentrl.models.lam import LAM
from latentrl.models.lapo import LAPO
from latentrl.models.oclam import OCLAM
from latentrl.models.wm import WM

MODELS: dict[str, type[LatentActionModel]] = {
    "flam": FLAM,
    "lam": LAM,
    "lapo": LAPO,
    "oclam": OCLAM,
    "wm": WM,
}


def build_model(config: ModelConfig, code_features: torch.Tensor) -> LatentActionModel:
    """The model named by ``config.model``, over the tokenizer's code feature table ``(C, d_z)``."""
    if config.model not in MODELS:
        raise ValueError(f"unknown model {config.model!r}; choose one of {sorted(MODELS)}")
    return MODELS[config.model](config, code_features)


__all__ = [
    "FLAM",
    "LAM",
    "LAPO",
    "MODELS",
    "OCLAM",
    "WM",
    "LatentActionModel",
    "LatentActions",
    "ModelConfig",
    "States",
    "build_model",
]
