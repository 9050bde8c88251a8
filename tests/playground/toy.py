"""A toy factored world model for the playground tests, exact by construction.

Three coloured sprites, one token each, on an 8 x 8 token grid (32 x 32 px, 4 px per token).
Code 0 is background, code ``j + 1`` sprite ``j``. Slot ``j < 3`` holds sprite ``j`` (attention
one-hot on its token), slot 3 the background. A latent action is an FSQ [3, 3] code: its two
values ``(dx, dy)`` in {-1, 0, 1} move the slot's sprite by one token (code 4 = no move,
code 5 = right). So what a playground step shows is exactly where it sent each slot's action:
the tests check the page and the session, not a learned model.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from latentrl.control import HeldOutRun
from latentrl.data.codes import CodeCache
from latentrl.data.recipes import DatasetSpec
from latentrl.models.base import LatentActions, States
from latentrl.quantize import BottleneckConfig, LatentBottleneck

GRID, TOKEN_PX, SPRITES, SLOTS = 8, 4, 3, 4
RIGHT, STAY = 5, 4
COLOURS = torch.tensor([[40, 40, 48], [230, 40, 40], [40, 220, 60], [60, 90, 240]])


class ToyTokenizer(nn.Module):
    config = SimpleNamespace(grid=GRID, downsample=TOKEN_PX, frame_size=GRID * TOKEN_PX)

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def decode_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(t, n)`` -> frames in [0, 1] ``(t, 3, h, w)``."""
        img = COLOURS[codes.long()].float() / 255  # (t, n, 3)
        img = img.reshape(-1, GRID, GRID, 3).permute(0, 3, 1, 2)
        return img.repeat_interleave(TOKEN_PX, 2).repeat_interleave(TOKEN_PX, 3)


class ToyModel(nn.Module):
    def __init__(self, factored: bool = True) -> None:
        super().__init__()
        bottleneck = BottleneckConfig(fsq_levels=(3, 3))
        self.config = SimpleNamespace(
            model="flam" if factored else "lam",
            factored=factored,
            num_slots=SLOTS,
            positional=False,
            bottleneck=bottleneck,
            action_levels=(3, 3),
            d_model=3,  # a slot state is (row, col, present)
        )
        self.idm = SimpleNamespace(bottleneck=LatentBottleneck(4, bottleneck))
        self.token_pos = nn.Parameter(torch.zeros(1))
        self.aggregator = SimpleNamespace(generate=self.render)

    def encode_states(self, codes: torch.Tensor) -> States:
        """Codes ``(b, t, n)`` -> per slot ``(row, col, present)`` and one-hot attention."""
        b, t, n = codes.shape
        states = torch.zeros(b, t, SLOTS, 3)
        attn = torch.zeros(b, t, SLOTS, n)
        attn[:, :, SLOTS - 1] = 1.0
        for j in range(SPRITES):
            here = codes == j + 1  # (b, t, n)
            tok = here.float().argmax(-1)
            states[:, :, j, 0] = torch.div(tok, GRID, rounding_mode="floor").float()
            states[:, :, j, 1] = (tok % GRID).float()
            states[:, :, j, 2] = here.any(-1).float()
            attn[:, :, j] = here.float()
            attn[:, :, SLOTS - 1] -= here.float()
        return States(states, attn)

    def encode_next(self, codes: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        return self.encode_states(codes[:, None]).states[:, 0]

    def infer(self, states: torch.Tensor, true_actions: torch.Tensor | None) -> LatentActions:
        move = (states[:, 1:, :, :2] - states[:, :-1, :, :2]).clamp(-1, 1)
        actions = move.flip(-1)  # (dx, dy)
        if not self.config.factored:
            actions = actions[:, :, :1]
        idx = ((actions[..., 0] + 1) + 3 * (actions[..., 1] + 1)).long()
        return LatentActions(actions, idx, torch.zeros(()))

    def predict_next(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        if actions.shape[1] == 1:  # a scene latent moves every sprite
            actions = actions.expand(-1, SLOTS, -1)
        out = states.clone()
        out[:, :SPRITES, 0] = (states[:, :SPRITES, 0] + actions[:, :SPRITES, 1]).clamp(0, GRID - 1)
        out[:, :SPRITES, 1] = (states[:, :SPRITES, 1] + actions[:, :SPRITES, 0]).clamp(0, GRID - 1)
        return out

    def render(self, states: torch.Tensor) -> torch.Tensor:
        codes = torch.zeros(states.shape[0], GRID * GRID, dtype=torch.long)
        for j in range(SPRITES):
            tok = (states[:, j, 0] * GRID + states[:, j, 1]).long()
            present = states[:, j, 2] > 0
            codes[present, tok[present]] = j + 1
        return codes


def toy_codes(episodes: int = 3, frames: int = 12, seed: int = 0) -> CodeCache:
    """Episodes of the three sprites wandering (one token per step, never overlapping)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(episodes):
        pos = np.array([[2, 1], [2, 5], [5, 3]])
        for _ in range(frames):
            codes = np.zeros(GRID * GRID, np.int16)
            for j, (r, c) in enumerate(pos):
                codes[r * GRID + c] = j + 1
            out.append(codes)
            new = np.clip(pos + rng.integers(-1, 2, pos.shape), 1, GRID - 2)
            if len({tuple(p) for p in new}) == SPRITES:
                pos = new
    starts = np.arange(episodes + 1, dtype=np.int64) * frames
    return CodeCache(np.stack(out), starts)


def toy_run(tmp: Path, factored: bool = True) -> HeldOutRun:
    model, tok = ToyModel(factored).eval(), ToyTokenizer().eval()
    data = DatasetSpec(env="video", task="toy", frame_size=GRID * TOKEN_PX)
    return HeldOutRun(tmp, model, tok, data, toy_codes(), "test")  # type: ignore[arg-type]


def sprite_centres(codes: torch.Tensor) -> dict[int, tuple[float, float]]:
    """Pixel centre ``(x, y)`` of each sprite in codes ``(n,)``."""
    out = {}
    for j in range(SPRITES):
        tok = int((codes == j + 1).nonzero()[0])
        r, c = divmod(tok, GRID)
        out[j] = ((c + 0.5) * TOKEN_PX, (r + 0.5) * TOKEN_PX)
    return out
