"""Frames of a MultiGrid state: a fast sprite-sheet renderer and a slow reference.

Axes: h w cells (rows, columns), th tw pixels within a tile, c colour, t tile kind, a agent.

The sprite sheet holds every tile that can occur, each painted once by
:func:`envs.multigrid.tiles.render_tile` (minigrid's helpers). With ``N`` agents its tile kinds
are, in order::

    0                              floor
    1                              wall
    2 + j                          goal of agent j, empty            (j < N)
    2 + N + i * (N + 1)            agent i on floor                  (i < N)
    2 + N + i * (N + 1) + 1 + j    agent i on the goal of agent j    (i, j < N)

A frame is then one gather: a per-cell tile index ``(h, w)`` picks tiles from the sheet. The
fast path gathers whole tile *rows* (``tw * c`` contiguous bytes each) in the output's own
memory order, ``(h th w)``, so one ``np.take`` writes the frame without a transpose; the row
indices of the static layout are precomputed at reset and only the agents' cells are patched
per frame. :func:`render_reference` paints cell by cell from the minigrid ``Grid`` with no cache,
as minigrid's own ``Grid.render`` does; tests assert the two agree pixel for pixel.
"""

from __future__ import annotations

import functools

import numpy as np
from einops import rearrange
from minigrid.core.grid import Grid
from minigrid.core.world_object import Wall

from envs.multigrid.core import AgentGoal
from envs.multigrid.palette import AGENT_COLORS, MAX_AGENTS
from envs.multigrid.tiles import render_tile

FLOOR_TILE = 0
WALL_TILE = 1
_NO_GOAL = -1


def goal_tile(num_agents: int, goal_owner: int) -> int:
    """Sheet index of the empty goal of agent ``goal_owner``."""
    del num_agents  # same for every team size; kept so every index function reads alike
    return 2 + goal_owner


def agent_tile(num_agents: int, agent: int, goal_owner: int = _NO_GOAL) -> int:
    """Sheet index of ``agent`` standing on the goal of ``goal_owner`` (-1: on the floor)."""
    return 2 + num_agents + agent * (num_agents + 1) + 1 + goal_owner


def num_tiles(num_agents: int) -> int:
    """Number of tile kinds in the sheet of a team of ``num_agents``."""
    return 2 + num_agents + num_agents * (num_agents + 1)


@functools.lru_cache(maxsize=32)
def sprite_sheet(num_agents: int, tile_size: int) -> np.ndarray:
    """Every tile a team of ``num_agents`` can produce, painted once (cached per process).

    Returns:
        read-only uint8 ``(t, th, tw, c)`` with ``t = num_tiles(num_agents)``.
    """
    if not 1 <= num_agents <= MAX_AGENTS:
        raise ValueError(f"num_agents must be in [1, {MAX_AGENTS}], got {num_agents}")
    tiles = [render_tile(None, None, tile_size), render_tile(Wall(), None, tile_size)]
    tiles += [render_tile(AgentGoal(j), None, tile_size) for j in range(num_agents)]
    for i in range(num_agents):
        color = AGENT_COLORS[i]
        tiles.append(render_tile(None, color, tile_size))
        tiles += [render_tile(AgentGoal(j), color, tile_size) for j in range(num_agents)]
    sheet = np.stack(tiles)
    sheet.setflags(write=False)
    return sheet


def layout_index(grid: Grid, num_agents: int) -> tuple[np.ndarray, np.ndarray]:
    """Tile index of each cell without agents, and the owner of the goal in each cell.

    Returns:
        ``(tiles, goal_owner)``: int64 ``(h, w)`` sheet indices, and int64 ``(h, w)`` with the
        index of the agent whose goal is in the cell, -1 where there is none.
    """
    tiles = np.full((grid.height, grid.width), FLOOR_TILE, dtype=np.int64)
    goal_owner = np.full((grid.height, grid.width), _NO_GOAL, dtype=np.int64)
    for y in range(grid.height):
        for x in range(grid.width):
            obj = grid.get(x, y)
            if obj is None:
                continue
            if isinstance(obj, AgentGoal):
                tiles[y, x] = goal_tile(num_agents, obj.agent)
                goal_owner[y, x] = obj.agent
            elif obj.type == "wall":
                tiles[y, x] = WALL_TILE
            else:
                raise ValueError(f"no sprite for minigrid object {obj.type!r} at {(x, y)}")
    return tiles, goal_owner


class SpriteRenderer:
    """Fast frames of one team over one layout; call :meth:`set_layout` at each reset.

    Args:
        num_agents: team size ``N`` (colours ``AGENT_COLORS[:N]``).
        tile_size: pixels per cell side.
    """

    def __init__(self, num_agents: int, tile_size: int) -> None:
        self.num_agents = num_agents
        self.tile_size = tile_size
        self.sheet = sprite_sheet(num_agents, tile_size)
        # One row of one tile per entry: (t th) rows of (tw c) bytes, the unit of the gather.
        self._rows = np.ascontiguousarray(rearrange(self.sheet, "t th tw c -> (t th) (tw c)"))
        self._row_offsets = np.arange(tile_size, dtype=np.int64)
        # agent_tile(N, i, owner) == agent_tile(N, i, 0) + owner, also for owner -1 (floor).
        self._agent_base = np.array(
            [agent_tile(num_agents, i, 0) for i in range(num_agents)], dtype=np.int64
        )
        self._layout_tiles = np.zeros((0, 0), dtype=np.int64)
        self._goal_owner = np.zeros((0, 0), dtype=np.int64)
        self._layout_rows = np.zeros((0, tile_size, 0), dtype=np.int64)

    def set_layout(self, grid: Grid) -> None:
        """Precompute the static tiles (walls, goals) of ``grid``; agents are added per frame."""
        self._layout_tiles, self._goal_owner = layout_index(grid, self.num_agents)
        # Row index of every output pixel row segment, laid out (h, th, w) like the frame.
        self._layout_rows = np.ascontiguousarray(
            rearrange(self._layout_tiles, "h w -> h 1 w") * self.tile_size
            + rearrange(self._row_offsets, "th -> 1 th 1")
        )

    def tile_index(self, agent_pos: np.ndarray) -> np.ndarray:
        """int64 ``(h, w)`` sheet index of every cell, given int ``(a, 2)`` agent ``(x, y)``."""
        xs, ys = agent_pos[:, 0], agent_pos[:, 1]
        tiles = self._layout_tiles.copy()
        tiles[ys, xs] = self._agent_base + self._goal_owner[ys, xs]
        return tiles

    def render_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """Assemble a frame from any int ``(h, w)`` tile index (plain fancy indexing).

        Returns:
            uint8 ``(h * th, w * tw, c)``, a new array.
        """
        return rearrange(self.sheet[tiles], "h w th tw c -> (h th) (w tw) c")

    def render(self, agent_pos: np.ndarray) -> np.ndarray:
        """The frame of the current layout with agents at int ``(a, 2)`` ``(x, y)`` cells.

        Same pixels as ``render_tiles(tile_index(agent_pos))``, about twice as fast.

        Returns:
            uint8 ``(h * th, w * tw, c)``, a new array.
        """
        xs, ys = agent_pos[:, 0], agent_pos[:, 1]
        rows = self._layout_rows.copy()
        tiles = self._agent_base + self._goal_owner[ys, xs]
        # Advanced indices around a slice put the agent axis first: the value is (a, th).
        rows[ys, :, xs] = tiles[:, None] * self.tile_size + self._row_offsets
        height, tile_size, width = rows.shape
        frame = np.take(self._rows, rows.reshape(-1), axis=0)  # (h th w) (tw c)
        # "(h th w) (tw c) -> (h th) (w tw) c" is a pure view; parsing it with einops would cost
        # a sizeable share of the whole frame (docs/research/env_speed.md), so numpy reshapes.
        return frame.reshape(height * tile_size, width * tile_size, 3)


def render_reference(grid: Grid, agent_pos: np.ndarray, tile_size: int) -> np.ndarray:
    """Slow reference: paint every cell from scratch with minigrid's helpers (no sprite cache).

    Args:
        grid: the layout (walls, ``AgentGoal`` objects).
        agent_pos: int ``(a, 2)`` cells ``(x, y)``; agent ``i`` has colour ``AGENT_COLORS[i]``.
        tile_size: pixels per cell side.

    Returns:
        uint8 ``(h * th, w * tw, c)``.
    """
    agent_at = {(int(x), int(y)): i for i, (x, y) in enumerate(agent_pos)}
    frame = np.zeros((grid.height * tile_size, grid.width * tile_size, 3), dtype=np.uint8)
    for y in range(grid.height):
        for x in range(grid.width):
            agent = agent_at.get((x, y))
            color = None if agent is None else AGENT_COLORS[agent]
            frame[y * tile_size : (y + 1) * tile_size, x * tile_size : (x + 1) * tile_size] = (
                render_tile(grid.get(x, y), color, tile_size)
            )
    return frame
