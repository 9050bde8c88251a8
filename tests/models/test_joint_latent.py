"""The monolithic models' one scene latent and more than one agent's move (known answer).

Synthetic data with a known answer: two agents on a 4 x 4 token grid (codes 1 and 2 on a
background of 0), each taking one of 5 moves (stay, right, left, down, up) uniformly and
independently every step; a move into the wall or onto the other agent leaves the agent where it
is. The moves are independent, so a latent that names only one agent's move leaves the other
agent's probe at chance. A scene latent wide enough for the joint action (FSQ of 4 dimensions,
625 codes) is trained on the next-frame loss alone; the probe must recover *both* agents' moves
well above chance, i.e. the code carries more than one agent's information.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from latentrl.models.base import LatentActions, States
from latentrl.nn.running_stats import recalibrate_running_stats
from latentrl.probe import probe
from latentrl.quantize import MAX_CATEGORICAL_CODES
from latentrl.types import CodeBatch
from tests.models.tiny import GRID, TOKENS, tiny_config, tiny_model

MOVES = torch.tensor([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]])  # (dx, dy) per action


def two_agent_windows(windows: int, t: int, gen: torch.Generator) -> CodeBatch:
    """Codes ``(b, t, 16)``, actions ``(b, t - 1, 2)`` and cells ``(b, t, 2, 2)``."""
    pos = torch.zeros(windows, t, 2, 2, dtype=torch.long)
    start = torch.stack([torch.randperm(TOKENS, generator=gen)[:2] for _ in range(windows)])
    pos[:, 0] = torch.stack([start % GRID, start // GRID], dim=-1)
    actions = torch.randint(0, len(MOVES), (windows, t - 1, 2), generator=gen)
    for s in range(t - 1):
        cur = pos[:, s].clone()
        for j in range(2):
            target = (cur[:, j] + MOVES[actions[:, s, j]]).clamp(0, GRID - 1)
            other = cur[:, 1 - j]
            blocked = (target == other).all(-1)
            cur[:, j] = torch.where(blocked[:, None], cur[:, j], target)
        pos[:, s + 1] = cur
    codes = torch.zeros(windows, t, TOKENS, dtype=torch.long)
    cell = pos[..., 1] * GRID + pos[..., 0]  # (b, t, 2)
    codes.scatter_(2, cell[..., :1], 1)
    codes.scatter_(2, cell[..., 1:], 2)
    return CodeBatch(codes, actions, pos)


def train_on_moves(kind: str, steps: int, **changes: object) -> tuple[float, ...]:
    """Train ``kind`` on label-free windows; the per-agent probe on held-out windows."""
    torch.manual_seed(0)
    model = tiny_model(kind, **changes)  # type: ignore[arg-type]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = two_agent_windows(32, 3, gen).without_labels()
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # As the training loop does: running moments of the final weights (latentrl.nn.running_stats).
    recal = [two_agent_windows(32, 3, gen).without_labels() for _ in range(20)]
    recalibrate_running_stats(model, lambda i: model.loss(recal[i]), len(recal))
    held_out = two_agent_windows(256, 3, torch.Generator().manual_seed(1))
    result = probe(model, held_out, cell_px=1, token_px=1)
    return (*result.per_agent, result.chance)


class JointOracle(nn.Module):
    """A scene model whose latent is a given FSQ code vector per transition (the probe's input)."""

    def __init__(self, values: torch.Tensor) -> None:
        super().__init__()
        self.config = tiny_config("lam", action_levels=(5, 5, 5, 5))
        self.values = values  # (b, t - 1, 4) in [-1, 1]

    def encode_states(self, codes: torch.Tensor) -> States:
        return States(torch.zeros(*codes.shape[:2], TOKENS, 1), None)

    def infer(self, states: torch.Tensor, true_actions: torch.Tensor | None) -> LatentActions:
        level = ((self.values + 1) * 2).round().long()  # 0..4 per dimension
        index = level[..., 0] * 125 + level[..., 1] * 25 + level[..., 2] * 5 + level[..., 3]
        return LatentActions(self.values[:, :, None], index[:, :, None], torch.zeros(()))


def test_probe_credits_a_joint_code_with_both_moves() -> None:
    # 625 codes > MAX_CATEGORICAL_CODES: the probe reads the code vector. A code that names both moves
    # (one FSQ dimension per agent) gives both agents' probes near 1; a code that names only
    # agent 0's move leaves agent 1 at chance: the probe tells the two apart.
    assert MAX_CATEGORICAL_CODES < 5**4
    batch = two_agent_windows(256, 3, torch.Generator().manual_seed(3))
    moves = batch.actions.float() / 2 - 1  # (b, t - 1, 2) in [-1, 1]
    zeros = torch.zeros_like(moves)
    both = probe(JointOracle(torch.cat([moves, zeros], -1)), batch, 1, 1)  # type: ignore[arg-type]
    one = probe(
        JointOracle(torch.cat([moves[..., :1], zeros[..., :1], zeros], -1)),  # type: ignore[arg-type]
        batch,
        1,
        1,
    )
    assert min(both.per_agent) > 0.9
    assert one.per_agent[0] > 0.9 and one.per_agent[1] < one.chance + 0.1


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="not reached yet: after 300-600 steps the trained scene latents give the two agents "
    "probes of 0.31-0.38 (chance 0.21), below chance + 0.3 (docs/research/strong_lam.md); "
    "remove this mark when they do",
)
@pytest.mark.parametrize("kind", ["lam", "lapo"])
def test_scene_latent_carries_both_agents_moves(kind: str) -> None:
    *per_agent, chance = train_on_moves(kind, 300, action_levels=(5, 5, 5, 5), action_norm=True)
    # One agent's move in the code leaves the other agent's probe at chance (~0.2-0.3 here):
    # both well above it means the scene code holds both moves.
    assert chance < 0.35
    assert min(per_agent) > chance + 0.3, (per_agent, chance)
