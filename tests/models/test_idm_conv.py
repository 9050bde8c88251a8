"""``idm_conv``: LAM's convolutional inverse dynamics reads how things moved, not where.

One agent-like token steps left on a uniform floor, once in one part of a 16 x 16 grid and once
in another, far enough from the walls that no convolution reaches them: the convolutional IDM
(with ``idm_delta``, so the floor contributes exactly nothing) gives both transitions the same
latent action, the attention IDM, which sees token positions, does not; a step right gets
another latent than a step left.
"""

from __future__ import annotations

import pytest
import torch

from tests.models.tiny import tiny_model

GRID = 16
FLOOR, AGENT = 0, 3


def step(row: int, col: int, dcol: int) -> torch.Tensor:
    """One window of two frames ``(1, 2, grid^2)``: the agent at (row, col), then at
    (row, col + dcol)."""
    codes = torch.full((1, 2, GRID, GRID), FLOOR)
    codes[0, 0, row, col] = AGENT
    codes[0, 1, row, col + dcol] = AGENT
    return codes.flatten(2)


def latents(conv: bool, windows: list[torch.Tensor]) -> torch.Tensor:
    model = tiny_model(
        "lam", action_kind="gaussian", grid=GRID, idm_delta=True, idm_conv=conv
    ).eval()
    with torch.no_grad():
        return torch.cat([model.infer_latent_actions(w).actions for w in windows])


def test_the_convolutional_latent_is_the_same_wherever_the_move_happens() -> None:
    # Every changed cell is at least 6 cells from a wall: 3 layers of 3 x 3 convolutions, then
    # the receptive field of the outputs they change.
    here, there, right = step(7, 7, -1), step(8, 9, -1), step(7, 7, +1)
    conv = latents(True, [here, there, right])
    torch.testing.assert_close(conv[0], conv[1], atol=1e-5, rtol=0)
    assert not torch.allclose(conv[0], conv[2], atol=1e-3)
    attention = latents(False, [here, there])  # untrained: positions still weigh little
    assert (attention[0] - attention[1]).abs().max() > 10 * (conv[0] - conv[1]).abs().max() + 1e-5


@pytest.mark.parametrize("changes", [{"model": "flam"}, {"model": "lam", "scene_patch": 2}])
def test_idm_conv_is_refused_off_the_lam_token_grid(changes: dict) -> None:
    kind = changes.pop("model")
    with pytest.raises(ValueError, match="idm_conv"):
        tiny_model(kind, idm_conv=True, **changes)
