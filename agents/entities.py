"""Where each entity of a goal image is, in a frame: the perception half of the slot-space goal.

MultiGrid draws every agent as a flat patch of its own colour in the middle of its cell, and
its goal as a hollow ring of that colour (the ring's middle is floor). An *entity* is a colour
of the goal image that fills the middle of exactly one cell there: each agent standing on its
goal. Floor and wall fill the middle of many cells and are not entities; the rings have no
coloured middle. In a frame, the same colour in the middle of exactly one cell is where that
agent stands now; its cell in the goal image is where it has to go.

Positions are ``(row, col)`` in token units of a tokenizer with ``grid`` tokens per side (the
units of a positional slot's centroid), so that a slot's predicted centroid displacement can be
added to them directly.

Shapes: frames ``(c, h, w)`` in [0, 1]; palette ``(p, c)``; positions ``(e, 2)``.
"""

from __future__ import annotations

import dataclasses

import torch
from einops import rearrange

COLOUR_TOLERANCE = 0.1
"""RGB distance (in [0, 1] units) within which a pixel has a palette colour."""


def cell_middles(frame: torch.Tensor, palette: torch.Tensor, cell_px: int) -> torch.Tensor:
    """Share ``(p, rows, cols)`` of each cell's middle pixels (the central half of the cell
    per side) that have palette colour ``p``."""
    h, w = frame.shape[-2:]
    if h % cell_px or w % cell_px:
        raise ValueError(f"a {h}x{w} frame is not a whole number of {cell_px}-pixel cells")
    cells = rearrange(frame, "c (r y) (q x) -> r q y x c", y=cell_px, x=cell_px)
    lo, hi = cell_px // 4, cell_px - cell_px // 4
    middle = cells[:, :, lo:hi, lo:hi]
    dist = (middle[..., None, :] - palette).norm(dim=-1)  # (r, q, y, x, p)
    return rearrange((dist < COLOUR_TOLERANCE).float().mean(dim=(2, 3)), "r q p -> p r q")


def single_cells(share: torch.Tensor) -> torch.Tensor:
    """Cell ``(p, 2)`` (row, col) of each colour that fills the middle of exactly one cell,
    ``-1`` for the others."""
    filled = share >= 0.5
    one = filled.sum(dim=(1, 2)) == 1
    flat = rearrange(filled, "p r q -> p (r q)").float().argmax(dim=1)
    cols = share.shape[-1]
    cell = torch.stack([flat // cols, flat % cols], dim=-1)
    return torch.where(one[:, None], cell, torch.full_like(cell, -1))


@dataclasses.dataclass(frozen=True)
class EntityGoal:
    """Entities found in both a frame and the goal image: ``now`` and ``target`` ``(e, 2)`` in
    token units (see module doc), index-aligned."""

    now: torch.Tensor
    target: torch.Tensor

    def __len__(self) -> int:
        return len(self.now)


def entity_goal(
    frame: torch.Tensor, goal: torch.Tensor, palette: torch.Tensor, cell_px: int, grid: int
) -> EntityGoal:
    """Where each entity of the goal image is in ``frame`` and where it is in ``goal``."""
    now = single_cells(cell_middles(frame, palette, cell_px))
    target = single_cells(cell_middles(goal, palette, cell_px))
    found = (now[:, 0] >= 0) & (target[:, 0] >= 0)
    if not found.any():
        raise ValueError(
            "no entity of the goal image (a colour in the middle of exactly one cell) is in the "
            "frame: the goal image must show the same scene as the env's frames, with the "
            "env's tile size as cell_px"
        )
    # Cell centre -> token coordinate: tokens of `patch` pixels, centres at (patch - 1) / 2.
    patch = frame.shape[-1] / grid
    centre = (cell_px - 1) / 2

    def tokens(cells: torch.Tensor) -> torch.Tensor:
        return (cells[found].float() * cell_px + centre - (patch - 1) / 2) / patch

    return EntityGoal(now=tokens(now), target=tokens(target))
