"""MultiGrid rendering: sprite sheet vs cell-by-cell reference, palette, what tiles show."""

from __future__ import annotations

import numpy as np
import pytest

from envs.multigrid.core import AgentGoal, build_room
from envs.multigrid.env import MultiGridEmptyEnv, MultiGridGoalEnv
from envs.multigrid.palette import (
    AGENT_COLOR_NAMES,
    AGENT_COLORS,
    FLOOR_COLOR,
    MAX_AGENTS,
    WALL_COLOR,
)
from envs.multigrid.render import (
    SpriteRenderer,
    agent_tile,
    goal_tile,
    num_tiles,
    render_reference,
    sprite_sheet,
)
from envs.multigrid.tiles import render_tile


def _srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of uint8 sRGB ``(..., 3)``."""
    c = np.asarray(rgb, dtype=float) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1
    )


def test_palette_is_distinct_from_floor_wall_and_itself() -> None:
    assert AGENT_COLORS.shape == (MAX_AGENTS, 3) and AGENT_COLORS.dtype == np.uint8
    assert len(set(AGENT_COLOR_NAMES)) == MAX_AGENTS
    lab = _srgb_to_lab(AGENT_COLORS)
    background = _srgb_to_lab(np.array([FLOOR_COLOR, WALL_COLOR]))
    pairwise = np.linalg.norm(lab[:, None] - lab[None], axis=-1) + 1e9 * np.eye(MAX_AGENTS)
    assert pairwise.min() > 35  # CIE76; 2.3 is a just noticeable difference
    assert np.linalg.norm(lab[:, None] - background[None], axis=-1).min() > 40
    assert lab[:, 0].min() >= 50  # every agent is light against the black floor


@pytest.mark.parametrize("num_agents", [1, 4, 16])
def test_sprite_sheet_tiles_are_all_different(num_agents: int) -> None:
    sheet = sprite_sheet(num_agents, 4)
    assert sheet.shape == (num_tiles(num_agents), 4, 4, 3) and sheet.dtype == np.uint8
    assert not sheet.flags.writeable
    flat = sheet.reshape(len(sheet), -1)
    assert len(np.unique(flat, axis=0)) == len(sheet)


def test_goal_and_agent_tiles_read_as_intended() -> None:
    n = 4
    sheet = sprite_sheet(n, 4).astype(int)
    color = AGENT_COLORS[2].astype(int)
    goal, agent = sheet[goal_tile(n, 2)], sheet[agent_tile(n, 2)]
    on_own_goal, on_other_goal = sheet[agent_tile(n, 2, 2)], sheet[agent_tile(n, 2, 1)]
    # A goal is a one-pixel ring at 4 px per cell, with a black hole.
    assert (goal[0] == color).all() and (goal[:, -1] == color).all()
    assert (goal[1:3, 1:3] == 0).all()
    # An agent is a blob: full colour in the middle, dark corners.
    assert (agent[1:3, 1:3] == color).all()
    assert agent[0, 0].sum() < color.sum() / 4
    # On its own goal it fills the cell; on another's goal the corners show that goal's colour.
    assert (np.abs(on_own_goal - color) <= 2).all()
    assert (on_other_goal[1:3, 1:3] == color).all()
    corner = on_other_goal[-1, -1]
    assert np.abs(corner - AGENT_COLORS[1]).sum() < np.abs(corner - color).sum()


def _states(num_agents: int, size: int, seed: int) -> list[tuple[list, np.ndarray]]:
    """Random goal layouts and agent cells, with agents on their own and on others' goals."""
    rng = np.random.default_rng(seed)
    interior = [(x, y) for y in range(1, size - 1) for x in range(1, size - 1)]
    states = []
    for k in range(2):
        picks = rng.choice(len(interior), 2 * num_agents, replace=False)
        cells = [interior[p] for p in picks]
        goals, agents = cells[:num_agents], cells[num_agents:]
        if k == 1:  # agent 0 on its own goal, agent 1 (if any) on the last agent's goal
            agents[0] = goals[0]
            if num_agents > 2:
                agents[1] = goals[-1]
        states.append((goals, np.array(agents, dtype=np.int64)))
    return states


@pytest.mark.parametrize(
    ("num_agents", "size", "tile_size"),
    [(1, 32, 4), (4, 32, 4), (16, 32, 4), (1, 16, 8), (4, 16, 8), (16, 16, 8), (3, 8, 5)],
)
def test_sprite_renderer_matches_reference(num_agents: int, size: int, tile_size: int) -> None:
    renderer = SpriteRenderer(num_agents, tile_size)
    for goals, agents in _states(num_agents, size, seed=num_agents * 100 + tile_size):
        grid = build_room(size, goals)
        renderer.set_layout(grid)
        frame = renderer.render(agents)
        assert frame.shape == (size * tile_size, size * tile_size, 3)
        assert frame.dtype == np.uint8
        np.testing.assert_array_equal(frame, render_reference(grid, agents, tile_size))
        np.testing.assert_array_equal(frame, renderer.render_tiles(renderer.tile_index(agents)))


def test_frame_shows_walls_floor_and_every_agent_colour() -> None:
    env = MultiGridEmptyEnv(num_agents=16, size=32, tile_size=4)
    obs, info = env.reset(seed=3)
    assert (obs[:4] == WALL_COLOR).all() and (obs[:, -4:] == WALL_COLOR).all()
    for i, (x, y) in enumerate(info["agent_pos"]):
        cell = obs[4 * y : 4 * y + 4, 4 * x : 4 * x + 4]
        assert (cell[1:3, 1:3] == AGENT_COLORS[i]).all()
    assert (obs[4:-4, 4:-4] == 0).mean() > 0.9


def test_reference_uses_minigrid_tiles_for_walls() -> None:
    from minigrid.core.grid import Grid
    from minigrid.core.world_object import Wall

    # Our floor and wall tiles are exactly minigrid's (same helpers, same supersampling).
    for tile_size in (4, 8, 32):
        for obj in (None, Wall()):
            ours = render_tile(obj, None, tile_size)
            theirs = Grid.render_tile(obj, tile_size=tile_size).astype(np.uint8)
            np.testing.assert_array_equal(ours, theirs)
    assert AgentGoal(3).encode() != AgentGoal(4).encode()


def test_render_returns_the_observation() -> None:
    env = MultiGridGoalEnv(num_agents=4, size=16, tile_size=4, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(env.render(), obs)
    obs, *_ = env.step(env.action_space.sample())
    np.testing.assert_array_equal(env.render(), obs)
    assert env.render() is not env.render()
