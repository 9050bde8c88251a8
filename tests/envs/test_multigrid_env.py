"""MultiGrid as a Gymnasium environment: registration, API compliance, determinism, tasks."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.multigrid.core import Action
from envs.multigrid.env import MultiGridEmptyEnv, MultiGridGoalEnv, default_max_steps
from envs.multigrid.policies import RandomPolicy
from envs.multigrid.registration import multigrid_env_ids, register_multigrid_envs

gym.register_envs(envs)
IDS = multigrid_env_ids()
S, U, D, L, R = (int(a) for a in Action)


def test_registered_ids() -> None:
    assert len(IDS) == len(set(IDS)) == 32
    assert {"MultiGrid-Empty-32x32-N4-v0", "MultiGrid-Goal-32x32-N16-v0"} <= set(IDS)
    assert "MultiGrid-Goal-8x8-N8-v0" not in IDS  # too crowded to register
    assert all(env_id in gym.registry for env_id in IDS)
    register_multigrid_envs()  # idempotent: no "overriding" warning, no error


def test_registration_does_not_import_the_simulator() -> None:
    code = (
        "import sys, envs.multigrid.registration as r; r.register_multigrid_envs(); "
        "assert 'envs.multigrid.env' not in sys.modules and 'minigrid' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("env_id", IDS)
def test_env_checker(env_id: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the passive checker warns instead of failing
        env = gym.make(env_id, render_mode="rgb_array")
        check_env(env.unwrapped)
        env.reset(seed=0)
        obs, reward, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and isinstance(reward, float)
        np.testing.assert_array_equal(env.render(), obs)
        env.close()
        check_env(gym.make(env_id).unwrapped, skip_render_check=True)


def test_spaces_and_info_contract() -> None:
    env = gym.make("MultiGrid-Goal-16x16-N3-v0")
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gym.spaces.MultiDiscrete([5, 5, 5])
    for _, info in [env.reset(seed=0), env.step(np.array([1, 2, 3]))[::4]]:
        assert set(info) == {"agent_pos", "goal_pos", "action", "executed_action", "success"}
        for key, shape in [("agent_pos", (3, 2)), ("goal_pos", (3, 2)), ("action", (3,))]:
            assert info[key].dtype == np.int64 and info[key].shape == shape
        assert info["executed_action"].dtype == np.int64 and info["executed_action"].shape == (3,)
        assert isinstance(info["success"], bool)
    _, info = env.reset(seed=0)
    assert not info["action"].any() and not info["executed_action"].any()
    _, info = gym.make("MultiGrid-Empty-16x16-N3-v0").reset(seed=0)
    assert (info["goal_pos"] == -1).all()


def test_start_and_goal_cells_are_distinct_interior_cells() -> None:
    env = MultiGridGoalEnv(num_agents=16, size=16)
    for seed in range(20):
        _, info = env.reset(seed=seed)
        cells = np.concatenate([info["agent_pos"], info["goal_pos"]])
        assert len({tuple(c) for c in cells}) == 32
        assert cells.min() >= 1 and cells.max() <= 14


def test_gym_make_overrides_kwargs() -> None:
    env = gym.make("MultiGrid-Goal-32x32-N4-v0", num_agents=2, size=8, tile_size=8, max_steps=7)
    assert env.observation_space.shape == (64, 64, 3)
    assert env.action_space.shape == (2,)
    env.reset(seed=0)
    for step in range(1, 8):
        *_, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.int64))
        assert truncated == (step == 7) and not terminated
    assert default_max_steps(32) == 128
    assert gym.make("MultiGrid-Empty-32x32-N4-v0").unwrapped.max_steps == 128


def _rollout(env: gym.Env, seed: int, steps: int) -> tuple[list[np.ndarray], list[dict]]:
    policy = RandomPolicy(env.unwrapped.num_agents, repeat=3, seed=seed)
    obs, info = env.reset(seed=seed)
    frames, infos = [obs], [info]
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(policy.act(obs, info))
        frames.append(obs)
        infos.append(info)
        if terminated or truncated:
            obs, info = env.reset()
    return frames, infos


@pytest.mark.parametrize("env_id", ["MultiGrid-Empty-32x32-N4-v0", "MultiGrid-Goal-16x16-N8-v0"])
def test_same_seed_same_frames_and_infos(env_id: str) -> None:
    frames_a, infos_a = _rollout(gym.make(env_id), seed=7, steps=100)
    frames_b, infos_b = _rollout(gym.make(env_id), seed=7, steps=100)
    np.testing.assert_array_equal(np.stack(frames_a), np.stack(frames_b))
    for info_a, info_b in zip(infos_a, infos_b, strict=True):
        assert info_a.keys() == info_b.keys()
        for key in info_a:
            np.testing.assert_array_equal(info_a[key], info_b[key])
    frames_c, _ = _rollout(gym.make(env_id), seed=8, steps=100)
    assert not np.array_equal(frames_a[0], frames_c[0])
    assert len({f.tobytes() for f in frames_a}) > 50  # the agents really move


def test_goal_success_reward_and_termination() -> None:
    env = MultiGridGoalEnv(num_agents=2, size=8, max_steps=10)
    env.reset(seed=0)
    env.set_state([(1, 1), (5, 5)], goal_pos=[(2, 1), (5, 6)], step_count=3)
    # Only agent 0 arrives: no success yet.
    _, reward, terminated, _, info = env.step([R, S])
    assert (reward, terminated, info["success"]) == (0.0, False, False)
    # Agent 0 leaves while agent 1 arrives: still not both at once.
    _, reward, terminated, _, info = env.step([R, D])
    assert (reward, terminated, info["success"]) == (0.0, False, False)
    _, reward, terminated, truncated, info = env.step([L, S])
    assert terminated and info["success"] and not truncated
    assert reward == pytest.approx(1 - 0.9 * 6 / 10)


def test_empty_task_never_terminates_or_rewards() -> None:
    env = MultiGridEmptyEnv(num_agents=4, size=8, max_steps=50)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for step in range(1, 51):
        _, reward, terminated, truncated, info = env.step(rng.integers(0, 5, 4))
        assert (reward, terminated, info["success"]) == (0.0, False, False)
        assert truncated == (step == 50)


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        MultiGridEmptyEnv(num_agents=17)
    with pytest.raises(ValueError):
        MultiGridGoalEnv(num_agents=16, size=6)  # 32 cells needed, 16 free
    env = MultiGridEmptyEnv(num_agents=2, size=8)
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step([1, 2, 3])
    with pytest.raises(ValueError):
        env.step([5, 0])
    with pytest.raises(ValueError):
        env.set_state([(0, 0), (1, 1)])  # a wall
