"""Gymnasium ids of MultiGrid, registered by entry-point strings so importing costs nothing.

Ids are ``MultiGrid-{Task}-{S}x{S}-N{N}-v0`` with Task in {Empty, Goal}, S in {8, 16, 32} and
N in {1, 2, 3, 4, 8, 16}. An 8x8 room has 36 free cells: it takes at most 4 agents (8 cells
with their goals), since denser rooms mostly produce blocked moves. ``gym.make(id, **kwargs)``
overrides ``num_agents``, ``size``, ``tile_size``, ``max_steps`` and ``render_mode``.
"""

from __future__ import annotations

import gymnasium as gym

SIZES: tuple[int, ...] = (8, 16, 32)
TEAM_SIZES: tuple[int, ...] = (1, 2, 3, 4, 8, 16)
MAX_AGENTS_BY_SIZE: dict[int, int] = {8: 4, 16: 16, 32: 16}
"""Largest registered team per room size (an id for every ``TEAM_SIZES`` entry up to it)."""

ENTRY_POINTS: dict[str, str] = {
    "Empty": "envs.multigrid.env:MultiGridEmptyEnv",
    "Goal": "envs.multigrid.env:MultiGridGoalEnv",
}


def multigrid_env_id(task: str, size: int, num_agents: int) -> str:
    """The id of one configuration, e.g. ``multigrid_env_id("Goal", 32, 4)``."""
    return f"MultiGrid-{task}-{size}x{size}-N{num_agents}-v0"


def multigrid_env_ids() -> list[str]:
    """Every registered MultiGrid id, in a stable order (task, size, team size)."""
    return [
        multigrid_env_id(task, size, n)
        for task in ENTRY_POINTS
        for size in SIZES
        for n in TEAM_SIZES
        if n <= MAX_AGENTS_BY_SIZE[size]
    ]


def register_multigrid_envs() -> None:
    """Register every MultiGrid id with Gymnasium; calling it again is a no-op."""
    for task, entry_point in ENTRY_POINTS.items():
        for size in SIZES:
            for n in TEAM_SIZES:
                env_id = multigrid_env_id(task, size, n)
                if n > MAX_AGENTS_BY_SIZE[size] or env_id in gym.registry:
                    continue
                # No max_episode_steps: the env truncates itself at its own max_steps (as
                # minigrid), so overriding max_steps through gym.make just works.
                gym.register(
                    id=env_id,
                    entry_point=entry_point,
                    kwargs={"size": size, "num_agents": n},
                )
