"""Movement and conflict rules of MultiGrid (``envs.multigrid.core``), by hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest

from envs.multigrid.core import (
    ACTION_DELTAS,
    NUM_ACTIONS,
    Action,
    Cell,
    build_room,
    passable_mask,
    resolve_joint_action,
)
from envs.multigrid.env import MultiGridEmptyEnv, MultiGridGoalEnv

S, U, D, L, R = (int(a) for a in Action)
ROOM = passable_mask(build_room(7))  # free cells: x, y in 1..5


def resolve(positions: list[Cell], actions: list[int]) -> tuple[list[Cell], list[int]]:
    return resolve_joint_action(positions, actions, ROOM)


def test_room_is_walled() -> None:
    assert not ROOM[0].any() and not ROOM[-1].any()
    assert not ROOM[:, 0].any() and not ROOM[:, -1].any()
    assert ROOM[1:-1, 1:-1].all()


@pytest.mark.parametrize(
    ("cell", "action"), [((1, 1), U), ((1, 1), L), ((5, 5), D), ((5, 5), R), ((1, 3), L)]
)
def test_wall_bump_stays(cell: Cell, action: int) -> None:
    assert resolve([cell], [action]) == ([cell], [S])


def test_move_outside_grid_is_blocked_without_walls() -> None:
    open_room = np.ones((3, 3), dtype=bool)
    assert resolve_joint_action([(0, 0)], [U], open_room) == ([(0, 0)], [S])
    assert resolve_joint_action([(2, 2)], [R], open_room) == ([(2, 2)], [S])


def test_free_moves() -> None:
    start = [(3, 3), (1, 1), (5, 5), (2, 4), (4, 2)]
    new, executed = resolve(start, [S, D, U, R, L])
    assert new == [(3, 3), (1, 2), (5, 4), (3, 4), (3, 2)]
    assert executed == [S, D, U, R, L]


def test_two_agents_targeting_one_cell_both_stay() -> None:
    assert resolve([(1, 2), (3, 2)], [R, L]) == ([(1, 2), (3, 2)], [S, S])
    # Three contenders, from three sides.
    assert resolve([(1, 2), (3, 2), (2, 3)], [R, L, U]) == ([(1, 2), (3, 2), (2, 3)], [S, S, S])


def test_swap_is_blocked() -> None:
    assert resolve([(1, 1), (2, 1)], [R, L]) == ([(1, 1), (2, 1)], [S, S])
    assert resolve([(3, 3), (3, 4)], [D, U]) == ([(3, 3), (3, 4)], [S, S])


def test_move_into_staying_agent_is_blocked() -> None:
    assert resolve([(1, 1), (2, 1)], [R, S]) == ([(1, 1), (2, 1)], [S, S])


def test_chain_follows_into_vacated_cells() -> None:
    new, executed = resolve([(1, 1), (2, 1), (3, 1)], [R, R, R])
    assert new == [(2, 1), (3, 1), (4, 1)]
    assert executed == [R, R, R]
    # A perpendicular follower: the leader turns, the follower takes its cell.
    assert resolve([(2, 2), (1, 2)], [D, R]) == ([(2, 3), (2, 2)], [D, R])


def test_chain_behind_a_stayer_is_blocked() -> None:
    start = [(1, 1), (2, 1), (3, 1), (4, 1)]
    assert resolve(start, [R, R, R, S]) == (start, [S, S, S, S])


def test_chain_into_wall_is_blocked() -> None:
    start = [(3, 1), (4, 1), (5, 1)]
    assert resolve(start, [R, R, R]) == (start, [S, S, S])


def test_chain_behind_a_contention_is_blocked() -> None:
    # a -> b's cell; b and c contend for (3, 3): b and c stay, so a is blocked too.
    start = [(1, 3), (2, 3), (4, 3)]
    assert resolve(start, [R, R, L]) == (start, [S, S, S])
    # An agent unrelated to the contention still moves.
    new, executed = resolve([*start, (5, 5)], [R, R, L, U])
    assert new == [*start, (5, 4)]
    assert executed == [S, S, S, U]


def test_chain_behind_a_swap_is_blocked() -> None:
    start = [(1, 1), (2, 1), (3, 1)]
    assert resolve(start, [R, R, L]) == (start, [S, S, S])


def test_rotation_of_four_moves() -> None:
    # A closed cycle of four is not a swap: every target is vacated.
    start = [(1, 1), (2, 1), (2, 2), (1, 2)]
    new, executed = resolve(start, [R, D, L, U])
    assert new == [(2, 1), (2, 2), (1, 2), (1, 1)]
    assert executed == [R, D, L, U]


def _check_invariants(start: list[Cell], actions: list[int], new: list[Cell], executed: list[int]):
    assert len(set(new)) == len(new), "two agents share a cell"
    for (x, y), (nx, ny), a, e in zip(start, new, actions, executed, strict=True):
        assert e in (a, S)
        assert (nx - x, ny - y) == ACTION_DELTAS[e]
        assert ROOM[ny, nx]


def test_random_joint_actions_keep_invariants_and_ignore_agent_order() -> None:
    rng = np.random.default_rng(0)
    cells = [(int(x), int(y)) for y, x in np.argwhere(ROOM)]
    for _ in range(500):
        n = int(rng.integers(1, 17))
        start = [cells[k] for k in rng.choice(len(cells), n, replace=False)]
        actions = rng.integers(0, NUM_ACTIONS, n).tolist()
        new, executed = resolve(start, actions)
        _check_invariants(start, actions, new, executed)
        perm = rng.permutation(n)
        new_p, executed_p = resolve([start[k] for k in perm], [actions[k] for k in perm])
        assert new_p == [new[k] for k in perm]
        assert executed_p == [executed[k] for k in perm]


def test_env_applies_rules_and_reports_executed_action() -> None:
    env = MultiGridEmptyEnv(num_agents=3, size=7, tile_size=4)
    env.reset(seed=0)
    env.set_state([(1, 1), (2, 1), (5, 5)])
    _, _, _, _, info = env.step([R, L, D])  # swap, and a wall bump
    np.testing.assert_array_equal(info["agent_pos"], [(1, 1), (2, 1), (5, 5)])
    np.testing.assert_array_equal(info["action"], [R, L, D])
    np.testing.assert_array_equal(info["executed_action"], [S, S, S])
    _, _, _, _, info = env.step([D, L, U])  # a moves away, b follows into the vacated cell
    np.testing.assert_array_equal(info["agent_pos"], [(1, 2), (1, 1), (5, 4)])
    np.testing.assert_array_equal(info["executed_action"], [D, L, U])


def test_goals_do_not_block() -> None:
    env = MultiGridGoalEnv(num_agents=2, size=7, tile_size=4)
    env.reset(seed=0)
    env.set_state([(1, 1), (5, 5)], goal_pos=[(3, 3), (2, 1)])
    # Agent 0 steps onto agent 1's goal, then off it again.
    _, _, _, _, info = env.step([R, S])
    np.testing.assert_array_equal(info["agent_pos"][0], (2, 1))
    _, _, _, _, info = env.step([D, S])
    np.testing.assert_array_equal(info["agent_pos"][0], (2, 2))
    np.testing.assert_array_equal(info["executed_action"], [D, S])


def test_executed_action_matches_motion_in_crowded_rollouts() -> None:
    env = MultiGridEmptyEnv(num_agents=16, size=8, tile_size=1, max_steps=200)
    rng = np.random.default_rng(1)
    _, info = env.reset(seed=1)
    blocked = 0
    for _ in range(200):
        prev = info["agent_pos"]
        action = rng.integers(0, NUM_ACTIONS, 16)
        _, _, _, _, info = env.step(action)
        deltas = np.array(ACTION_DELTAS)[info["executed_action"]]
        np.testing.assert_array_equal(info["agent_pos"], prev + deltas)
        assert len({tuple(p) for p in info["agent_pos"]}) == 16
        changed = info["executed_action"] != info["action"]
        assert (info["executed_action"][changed] == S).all()
        blocked += int(changed.sum())
    assert blocked > 100  # 16 agents in 36 cells: the rules really were exercised
