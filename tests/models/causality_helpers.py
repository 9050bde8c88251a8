"""Helpers of the causality tests: next-frame logits from frame t, and batches whose later
frames are replaced."""

from __future__ import annotations

import torch

from latentrl.models.base import LatentActionModel
from latentrl.nn.aggregator import split_codes
from latentrl.types import CodeBatch
from tests.models.tiny import CODEBOOK


def next_frame_logits(model: LatentActionModel, batch: CodeBatch, t: int = 0) -> torch.Tensor:
    """Aggregator logits of frame t+1 predicted from frame t and latent action t.

    Scored against a fixed target so that only the model's inputs can change them.
    """
    states = model.encode_states(batch.codes).states
    latent = model.infer(states, batch.actions)
    nxt = model.predict_next(states[:, t], latent.actions[:, t])
    target = torch.zeros_like(batch.codes[:, 0])
    logits = model.aggregator.level_logits(
        model.aggregator.hidden(nxt), split_codes(target, model.aggregator.levels)
    )
    return torch.cat(logits, dim=-1)


def changed_from(batch: CodeBatch, frame: int) -> CodeBatch:
    """The batch with the codes of frames ``frame`` and later replaced."""
    codes = batch.codes.clone()
    codes[:, frame:] = (codes[:, frame:] + 1 + torch.randint_like(codes[:, frame:], 14)) % CODEBOOK
    return batch._replace(codes=codes)
