"""How one cell looks: painters built only from minigrid's drawing helpers.

Every tile is painted the way ``minigrid.core.grid.Grid.render_tile`` paints one: on a canvas
``SUBDIVS`` times the tile size per side, in the unit square ``[0, 1]^2`` (x right, y down),
then box-downsampled (anti-aliasing) and truncated to uint8 when stored. Layers, bottom up:

1. minigrid's grid lines on the top and left edge (visible from about 8 px per tile);
2. the cell's object: a minigrid ``Wall`` (solid grey) or an agent's goal, a hollow square
   whose ring is a quarter of the tile wide (exactly one pixel at 4 px per tile) in the
   agent's colour, so that a goal reads as an outline and an agent as a blob;
3. an agent, a large filled disk in its colour; at 4 px per tile it is a rounded blob of
   about 12 pixels (4 full, 8 edge pixels at two thirds, corners at a ninth), so it dominates
   the static goals. An agent on its own goal covers the ring's sides and leaves its corners:
   a solid square, unlike the agent alone (dark corners); on another agent's goal it shows
   that goal's colour in the corners.

Shapes: a canvas is uint8 ``(SUBDIVS * tile_size, SUBDIVS * tile_size, 3)``; a finished tile
is uint8 ``(tile_size, tile_size, 3)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from minigrid.core.world_object import WorldObj
from minigrid.utils.rendering import downsample, fill_coords, point_in_circle, point_in_rect

from envs.multigrid.palette import GRID_LINE_COLOR

SUBDIVS = 3
"""Supersampling factor per side, as in minigrid's ``Grid.render_tile``."""

GOAL_RING_WIDTH = 0.25
"""Width of a goal's ring as a fraction of the tile: one pixel at 4 px per tile."""

AGENT_RADIUS = 0.45
"""Radius of an agent's disk as a fraction of the tile (minigrid's ``Ball`` uses 0.31, which
leaves only a 2x2-pixel agent at 4 px per tile)."""

Color = Sequence[int] | np.ndarray


def point_in_ring(width: float) -> Callable[[float, float], bool]:
    """A hollow square: points of the unit square within ``width`` of its border."""
    outer = point_in_rect(0.0, 1.0, 0.0, 1.0)
    inner = point_in_rect(width, 1.0 - width, width, 1.0 - width)

    def fn(x: float, y: float) -> bool:
        return outer(x, y) and not inner(x, y)

    return fn


def paint_goal(canvas: np.ndarray, color: Color) -> None:
    """Paint a goal (hollow square in ``color``) onto a supersampled canvas, in place."""
    fill_coords(canvas, point_in_ring(GOAL_RING_WIDTH), color)


def paint_agent(canvas: np.ndarray, color: Color) -> None:
    """Paint an agent (filled disk in ``color``) onto a supersampled canvas, in place."""
    fill_coords(canvas, point_in_circle(0.5, 0.5, AGENT_RADIUS), color)


def render_tile(obj: WorldObj | None, agent_color: Color | None, tile_size: int) -> np.ndarray:
    """Paint one cell from scratch, as minigrid's ``Grid.render_tile`` does (no cache).

    Args:
        obj: the cell's minigrid object (``Wall``, ``AgentGoal``) or ``None`` for floor.
        agent_color: RGB of the agent standing in the cell, or ``None``.
        tile_size: output pixels per side.

    Returns:
        uint8 ``(tile_size, tile_size, 3)``.
    """
    canvas = np.zeros((tile_size * SUBDIVS, tile_size * SUBDIVS, 3), dtype=np.uint8)
    fill_coords(canvas, point_in_rect(0, 0.031, 0, 1), GRID_LINE_COLOR)
    fill_coords(canvas, point_in_rect(0, 1, 0, 0.031), GRID_LINE_COLOR)
    if obj is not None:
        obj.render(canvas)
    if agent_color is not None:
        paint_agent(canvas, agent_color)
    # minigrid stores the float mean into a uint8 frame, which truncates; do the same.
    return downsample(canvas, SUBDIVS).astype(np.uint8)
