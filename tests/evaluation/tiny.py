"""A tiny tokenizer that matches ``tests.models.tiny``'s models: 16 codes, 8-dim features,
a 4 x 4 token grid over 16 x 16 frames (SSIM's 11-pixel window fits)."""

from __future__ import annotations

import torch

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
