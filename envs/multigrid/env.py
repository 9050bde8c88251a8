"""Gymnasium environments of MultiGrid: ``N`` coloured agents moving at once in a walled room.

Shapes: observations are uint8 ``(H, W, 3)`` frames with ``H = W = size * tile_size``; per-agent
arrays in ``info`` are ``(N, ...)`` with agent ``i`` drawn in ``AGENT_COLORS[i]``.

Every ``reset`` and ``step`` returns ``info`` with the same keys, all numpy:

- ``agent_pos``: int64 ``(N, 2)``, each agent's cell ``(x, y)`` after the step;
- ``goal_pos``: int64 ``(N, 2)``, each agent's goal cell, -1 for tasks without goals;
- ``action``: int64 ``(N,)``, the joint action requested (zeros at reset);
- ``executed_action``: int64 ``(N,)``, the joint action carried out: a blocked move becomes
  ``STAY`` (0), so ``agent_pos`` changed by exactly ``ACTION_DELTAS[executed_action]``;
- ``success``: bool, every agent stands on its own goal (always False without goals).

Agents are not minigrid agents: they have no direction and no field of view. Actions are the
absolute moves of :class:`envs.multigrid.core.Action` (see that module for why, and for the
conflict rules).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from minigrid.core.grid import Grid

from envs.multigrid.core import (
    NUM_ACTIONS,
    Cell,
    build_room,
    passable_mask,
    resolve_joint_action,
)
from envs.multigrid.palette import MAX_AGENTS
from envs.multigrid.render import SpriteRenderer

_MAX_STEPS_PER_SIDE = 4


def default_max_steps(size: int) -> int:
    """``4 * size``: 128 at 32x32, about twice the longest shortest path (``2 * (size - 3)``)
    between two interior cells, enough for the expert with 16 agents."""
    return _MAX_STEPS_PER_SIDE * size


class MultiGridEnv(gym.Env[np.ndarray, np.ndarray]):
    """Shared machinery of the MultiGrid tasks; use :class:`MultiGridEmptyEnv` or
    :class:`MultiGridGoalEnv`.

    Args:
        num_agents: ``N``, 1 to 16.
        size: cells per side of the room, outer walls included (as minigrid's ``size``).
        tile_size: pixels per cell side; frames are ``size * tile_size`` pixels square.
        max_steps: steps before ``truncated``; ``None`` for :func:`default_max_steps`.
        render_mode: ``None`` or ``"rgb_array"`` (``render()`` returns the current frame).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}
    has_goals: ClassVar[bool] = False

    def __init__(
        self,
        num_agents: int = 4,
        size: int = 32,
        tile_size: int = 4,
        max_steps: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        if not 1 <= num_agents <= MAX_AGENTS:
            raise ValueError(f"num_agents must be in [1, {MAX_AGENTS}], got {num_agents}")
        if size < 3:
            raise ValueError(f"size must be at least 3 (walls plus one cell), got {size}")
        cells_needed = num_agents * (2 if self.has_goals else 1)
        if cells_needed > (size - 2) ** 2:
            raise ValueError(
                f"{num_agents} agents need {cells_needed} distinct free cells; "
                f"a {size}x{size} room has {(size - 2) ** 2}"
            )
        if tile_size < 1:
            raise ValueError(f"tile_size must be positive, got {tile_size}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unsupported render_mode {render_mode!r}")
        self.num_agents = num_agents
        self.size = size
        self.tile_size = tile_size
        self.max_steps = default_max_steps(size) if max_steps is None else int(max_steps)
        self.render_mode = render_mode

        pixels = size * tile_size
        self.observation_space = spaces.Box(0, 255, (pixels, pixels, 3), dtype=np.uint8)
        self.action_space = spaces.MultiDiscrete([NUM_ACTIONS] * num_agents)

        # Goals can be walked over, so the room's passable cells never change between resets.
        self.passable: np.ndarray = passable_mask(build_room(size))
        """bool ``(H, W)`` cells, ``[y, x]``: where an agent may stand."""
        self._free_cells = np.argwhere(self.passable)[:, ::-1].copy()  # (cells, 2) as (x, y)
        self._renderer = SpriteRenderer(num_agents, tile_size)
        self.grid: Grid = build_room(size)
        """The current layout as a minigrid ``Grid`` (walls and ``AgentGoal`` objects)."""
        self.step_count = 0
        self._pos: list[Cell] = []
        self._goals: list[Cell] = []
        self._goal_array = np.full((num_agents, 2), -1, dtype=np.int64)

    # -- state ----------------------------------------------------------------------------------

    @property
    def agent_pos(self) -> np.ndarray:
        """int64 ``(N, 2)``: each agent's cell ``(x, y)`` (a copy)."""
        return np.array(self._pos, dtype=np.int64).reshape(self.num_agents, 2)

    @property
    def goal_pos(self) -> np.ndarray:
        """int64 ``(N, 2)``: each agent's goal ``(x, y)``, -1 without goals (a copy)."""
        return self._goal_array.copy()

    def set_state(
        self,
        agent_pos: np.ndarray | Sequence[Cell],
        goal_pos: np.ndarray | Sequence[Cell] | None = None,
        step_count: int = 0,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Put the agents (and goals) at given cells, for tests and hand-built situations.

        Args:
            agent_pos: int ``(N, 2)`` distinct passable ``(x, y)`` cells.
            goal_pos: int ``(N, 2)`` distinct passable cells; required with goals, else ``None``.
            step_count: steps already taken in the episode.

        Returns:
            ``(observation, info)`` as from ``reset``.
        """
        pos = [(int(x), int(y)) for x, y in np.asarray(agent_pos).reshape(-1, 2)]
        goals = [] if goal_pos is None else [(int(x), int(y)) for x, y in np.asarray(goal_pos)]
        if len(pos) != self.num_agents or len(set(pos)) != len(pos):
            raise ValueError(f"need {self.num_agents} distinct agent cells, got {pos}")
        if self.has_goals != bool(goals) or (goals and len(set(goals)) != self.num_agents):
            raise ValueError(f"need {self.num_agents if self.has_goals else 0} goals, got {goals}")
        for x, y in pos + goals:
            if not (0 <= x < self.size and 0 <= y < self.size and self.passable[y, x]):
                raise ValueError(f"cell {(x, y)} is not passable")
        self._set_layout(pos, goals)
        self.step_count = step_count
        return self._render_frame(), self._reset_info()

    def _set_layout(self, pos: list[Cell], goals: list[Cell]) -> None:
        self._pos = pos
        self._goals = goals
        self._goal_array = (
            np.array(goals, dtype=np.int64)
            if goals
            else np.full((self.num_agents, 2), -1, dtype=np.int64)
        )
        self.grid = build_room(self.size, goals)
        self._renderer.set_layout(self.grid)

    def _success(self) -> bool:
        return self.has_goals and self._pos == self._goals

    def _info(
        self, agent_pos: np.ndarray, action: np.ndarray, executed: np.ndarray
    ) -> dict[str, Any]:
        return {
            "agent_pos": agent_pos,
            "goal_pos": self._goal_array.copy(),
            "action": action,
            "executed_action": executed,
            "success": self._success(),
        }

    def _reset_info(self) -> dict[str, Any]:
        zeros = np.zeros(self.num_agents, dtype=np.int64)
        return self._info(self.agent_pos, zeros, zeros.copy())

    def _render_frame(self) -> np.ndarray:
        return self._renderer.render(self.agent_pos)

    def goal_frame(self) -> np.ndarray:
        """The frame of the solved task, every agent on its own goal: uint8 ``(H, W, 3)``.

        The goal *image* of goal-conditioned agents (a planner compares predicted frames with
        it); without goals it is the current frame.
        """
        if not self.has_goals:
            return self._render_frame()
        return self._renderer.render(self.goal_pos)

    # -- gymnasium API --------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw distinct start cells (and goal cells, distinct from every start) from ``seed``."""
        super().reset(seed=seed, options=options)
        n = self.num_agents
        picks = self.np_random.choice(
            len(self._free_cells), size=2 * n if self.has_goals else n, replace=False
        )
        cells = [(int(x), int(y)) for x, y in self._free_cells[picks]]
        self._set_layout(cells[:n], cells[n:])
        self.step_count = 0
        return self._render_frame(), self._reset_info()

    def step(
        self, action: np.ndarray | Sequence[int]
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Move every agent at once.

        Args:
            action: int ``(N,)`` in ``[0, 5)``: the joint action.
        """
        requested = np.array(action, dtype=np.int64)  # a copy: info must not alias the caller
        actions = requested.tolist()
        # Plain Python checks: numpy reductions cost more than the whole rule on 16 ints.
        if requested.shape != (self.num_agents,) or not all(0 <= a < NUM_ACTIONS for a in actions):
            raise ValueError(
                f"expected a joint action of shape ({self.num_agents},) in [0, {NUM_ACTIONS}), "
                f"got {requested}"
            )
        self._pos, executed = resolve_joint_action(self._pos, actions, self.passable)
        self.step_count += 1

        success = self._success()
        reward = 1.0 - 0.9 * (self.step_count / self.max_steps) if success else 0.0
        truncated = self.step_count >= self.max_steps
        agent_pos = self.agent_pos
        info = self._info(agent_pos, requested, np.array(executed, dtype=np.int64))
        return self._renderer.render(agent_pos), reward, success, truncated, info

    def render(self) -> np.ndarray | None:
        """The current frame, uint8 ``(H, W, 3)``, when ``render_mode="rgb_array"``."""
        if self.render_mode is None:
            gym.logger.warn(
                "render() called without a render_mode; use render_mode='rgb_array' "
                "(the observation is already the frame)."
            )
            return None
        return self._render_frame()


class MultiGridEmptyEnv(MultiGridEnv):
    """
    ## Description

    An empty room with minigrid's outer wall and ``N`` agents (1 to 16), each a disk in its
    own colour (``envs.multigrid.palette.AGENT_COLORS``), starting on distinct random cells.
    There is no task: agents wander under a behaviour policy. This is the paper's
    ``empty-agent_K`` setting, a source of action-free multi-entity video.

    ## Action Space

    ``MultiDiscrete([5] * N)``: one absolute move per agent, all applied at once. Agents have no
    direction. A move into a wall, into a cell another agent also targets (all contenders stay),
    a swap, or into a cell whose occupant stays is blocked and leaves the agent in place (see
    ``envs.multigrid.core``); ``info["executed_action"]`` reports it as 0.

    | Num | Name  | Action            |
    |-----|-------|-------------------|
    | 0   | stay  | Do nothing        |
    | 1   | up    | Move to y - 1     |
    | 2   | down  | Move to y + 1     |
    | 3   | left  | Move to x - 1     |
    | 4   | right | Move to x + 1     |

    ## Observation Space

    The full RGB frame, ``Box(0, 255, (size * tile_size, size * tile_size, 3), uint8)``:
    128x128 for the default 32x32 cells at 4 px per cell. ``info`` carries positions and
    actions (see ``envs.multigrid.env``); ``goal_pos`` is -1 here.

    ## Rewards

    Always 0.

    ## Termination

    Never terminates. Truncated after ``max_steps`` steps (default ``4 * size``: 128 at 32x32).

    ## Registered Configurations

    ``MultiGrid-Empty-{S}x{S}-N{N}-v0`` for S in {8, 16, 32} and N in {1, 2, 3, 4, 8, 16}
    with at most 4 agents at 8x8 (see ``envs.multigrid.registration``), e.g.
    ``MultiGrid-Empty-32x32-N4-v0``. ``gym.make`` overrides ``num_agents``, ``size``,
    ``tile_size`` and ``max_steps``.
    """

    has_goals = False


class MultiGridGoalEnv(MultiGridEnv):
    """
    ## Description

    An empty room with minigrid's outer wall and ``N`` agents (1 to 16). Each agent has a goal
    cell drawn as a hollow square in the agent's colour; an agent is a disk of that colour, so
    an agent on its own goal shows as a filled square, and an agent on another's goal as a disk
    inside a ring of another colour. Start cells and goal cells are ``2 N`` distinct random
    interior cells drawn from the reset seed, so no agent starts on a goal. Agents may pass
    through any goal. The task is solved when every agent stands on its own goal at the same
    time.

    ## Action Space

    ``MultiDiscrete([5] * N)``: one absolute move per agent, all applied at once, with the
    same conflict rules as ``MultiGridEmptyEnv``.

    | Num | Name  | Action            |
    |-----|-------|-------------------|
    | 0   | stay  | Do nothing        |
    | 1   | up    | Move to y - 1     |
    | 2   | down  | Move to y + 1     |
    | 3   | left  | Move to x - 1     |
    | 4   | right | Move to x + 1     |

    ## Observation Space

    The full RGB frame, ``Box(0, 255, (size * tile_size, size * tile_size, 3), uint8)``.
    ``info["goal_pos"]`` holds the goals, int64 ``(N, 2)`` as ``(x, y)``.

    ## Rewards

    ``1 - 0.9 * (step_count / max_steps)`` on success (as minigrid), otherwise 0.

    ## Termination

    Terminated on success. Truncated after ``max_steps`` steps (default ``4 * size``: 128 at
    32x32, about twice the longest shortest path, so the collision-avoiding expert of
    ``envs.multigrid.policies`` succeeds in almost every episode).

    ## Registered Configurations

    ``MultiGrid-Goal-{S}x{S}-N{N}-v0`` for S in {8, 16, 32} and N in {1, 2, 3, 4, 8, 16}
    with at most 4 agents at 8x8, e.g. ``MultiGrid-Goal-32x32-N4-v0``. ``gym.make``
    overrides ``num_agents``, ``size``, ``tile_size`` and ``max_steps``.
    """

    has_goals = True
