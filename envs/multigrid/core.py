"""Multi-agent state and movement rules of MultiGrid.

The static layout (outer walls, goal cells) lives in a minigrid ``Grid`` of ``WorldObj``; the
agents, as in minigrid, are not grid objects but a list of cells. Agents have no direction:
actions are absolute moves, because at 4 px per cell a turn would be invisible while a move is
a clear displacement, so a per-agent action can be read off two consecutive frames.

Coordinates are minigrid's: a cell is ``(x, y)`` with x the column (right) and y the row
(down); ``(0, 0)`` is the top-left wall. Arrays indexed by cell are ``(H, W)`` = ``[y, x]``.

Conflict rules (deterministic, order-free; see :func:`resolve_joint_action`): all agents move
at once; two agents never share a cell; a blocked move leaves the agent in place and counts as
STAY in ``executed``. A move is blocked when

1. its target is a wall or outside the grid;
2. it is half of a swap (``i`` targets ``j``'s cell while ``j`` targets ``i``'s);
3. another agent claims the same target cell: a second mover (all contenders stay) or an
   agent that stays there; blocking an agent makes it claim its own cell, so rule 3 is applied
   again until nothing changes (a chain behind a blocked agent stays blocked, a chain behind a
   moving agent follows it into the vacated cells, and a closed cycle of three or more
   agents rotates).

Goal cells never block: any agent may stand on or pass through any goal.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from minigrid.core.grid import Grid
from minigrid.core.world_object import WorldObj

from envs.multigrid.palette import AGENT_COLORS, MAX_AGENTS
from envs.multigrid.tiles import paint_goal

Cell = tuple[int, int]


class Action(IntEnum):
    """Per-agent absolute moves."""

    STAY = 0
    UP = 1
    DOWN = 2
    LEFT = 3
    RIGHT = 4


NUM_ACTIONS = len(Action)

ACTION_DELTAS: tuple[Cell, ...] = ((0, 0), (0, -1), (0, 1), (-1, 0), (1, 0))
"""``(dx, dy)`` of each action, indexed by ``Action``."""


class AgentGoal(WorldObj):
    """The goal cell of one agent: a hollow square in that agent's palette colour.

    minigrid validates colour names against its six colours, so the object carries minigrid's
    "green" (the colour of its own ``Goal``) for bookkeeping and draws with ``AGENT_COLORS``.
    """

    def __init__(self, agent: int) -> None:
        if not 0 <= agent < MAX_AGENTS:
            raise ValueError(f"agent index {agent} outside [0, {MAX_AGENTS})")
        super().__init__("goal", "green")
        self.agent = agent

    def can_overlap(self) -> bool:
        return True

    def encode(self) -> tuple[int, int, int]:
        # The state slot carries the owner so that goals of different agents encode apart.
        return (OBJECT_TO_IDX["goal"], COLOR_TO_IDX["green"], self.agent)

    def render(self, img: np.ndarray) -> None:
        paint_goal(img, AGENT_COLORS[self.agent])


def build_room(size: int, goal_pos: Sequence[Cell] = ()) -> Grid:
    """An empty ``size`` x ``size`` room with minigrid's outer wall, plus one goal per agent.

    Args:
        size: cells per side, walls included (minigrid's ``EmptyEnv(size)``).
        goal_pos: ``(x, y)`` of agent ``i``'s goal at index ``i``; empty for no goals.
    """
    grid = Grid(size, size)
    grid.wall_rect(0, 0, size, size)
    for agent, (x, y) in enumerate(goal_pos):
        grid.set(int(x), int(y), AgentGoal(agent))
    return grid


def passable_mask(grid: Grid) -> np.ndarray:
    """bool ``(H, W)``: cells an agent may enter (empty, or an object it can overlap)."""
    mask = np.ones((grid.height, grid.width), dtype=bool)
    for y in range(grid.height):
        for x in range(grid.width):
            obj = grid.get(x, y)
            if obj is not None and not obj.can_overlap():
                mask[y, x] = False
    return mask


def resolve_joint_action(
    positions: Sequence[Cell], actions: Sequence[int], passable: np.ndarray
) -> tuple[list[Cell], list[int]]:
    """Apply one simultaneous joint action under the module's conflict rules.

    Plain Python on purpose: for at most 16 agents it is several times faster than numpy,
    whose per-call overhead dominates on arrays this small.

    Args:
        positions: ``(x, y)`` of each of the ``N`` agents, pairwise distinct.
        actions: ``N`` ints in ``Action``.
        passable: bool ``(H, W)``, from :func:`passable_mask`.

    Returns:
        ``(new_positions, executed)``: the ``N`` cells after the step (pairwise distinct) and
        the ``N`` actions actually executed (a blocked move becomes ``Action.STAY``).
    """
    height, width = passable.shape
    n = len(positions)
    targets = list(positions)
    moving = [False] * n
    for i in range(n):
        dx, dy = ACTION_DELTAS[actions[i]]
        if dx == 0 and dy == 0:
            continue
        x, y = positions[i]
        tx, ty = x + dx, y + dy
        if 0 <= tx < width and 0 <= ty < height and passable[ty, tx]:
            targets[i] = (tx, ty)
            moving[i] = True

    occupant = {cell: i for i, cell in enumerate(positions)}
    swappers = [
        i
        for i in range(n)
        if moving[i]
        and (j := occupant.get(targets[i])) is not None
        and moving[j]
        and targets[j] == positions[i]
    ]
    for i in swappers:
        moving[i] = False
        targets[i] = positions[i]

    # Synchronous rounds: every agent blocked in a round is found from the same claims, so the
    # outcome does not depend on agent order. Blocking only ever adds claims on the blocked
    # agents' own cells, so this ends after at most n rounds.
    while True:
        claims: dict[Cell, int] = {}
        for cell in targets:
            claims[cell] = claims.get(cell, 0) + 1
        blocked = [i for i in range(n) if moving[i] and claims[targets[i]] > 1]
        if not blocked:
            break
        for i in blocked:
            moving[i] = False
            targets[i] = positions[i]

    executed = [int(actions[i]) if moving[i] else int(Action.STAY) for i in range(n)]
    return targets, executed
