"""Procgen env: Gymnasium API, determinism, seeds, frame sizes, and exact episode boundaries."""

from __future__ import annotations

import struct
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs.procgen import (
    GAMES,
    NUM_ACTIONS,
    PROCGEN_TIMEOUTS,
    ProcgenEnv,
    bench_procgen,
    env_id,
    register_procgen_envs,
)

NOOP = 4  # procgen's empty key combination


def _rollout(env: ProcgenEnv, seed: int, actions: np.ndarray) -> tuple[list, list]:
    obs, _ = env.reset(seed=seed)
    frames, rewards = [obs], []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(int(action))
        frames.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            obs, _ = env.reset()
            frames.append(obs)
    return frames, rewards


@pytest.mark.parametrize("game", ["coinrun", "starpilot"])
def test_env_checker(game: str) -> None:
    register_procgen_envs()
    env = gym.make(env_id(game), render_mode="rgb_array")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any checker complaint fails the test
            check_env(env.unwrapped)
    finally:
        env.close()


def test_registration_covers_all_games_and_forwards_kwargs() -> None:
    register_procgen_envs()
    register_procgen_envs()  # idempotent
    for game in GAMES:
        spec = gym.spec(env_id(game))
        assert spec.entry_point == "envs.procgen:ProcgenEnv"
        assert spec.kwargs["game"] == game
        assert spec.max_episode_steps is None  # procgen's own timeouts end episodes
    env = gym.make("Procgen-Maze-v0", frame_size=32, distribution_mode="hard")
    try:
        assert env.unwrapped.game == "maze"
        assert env.unwrapped.distribution_mode == "hard"
        assert env.observation_space.shape == (32, 32, 3)
        assert env.action_space == gym.spaces.Discrete(NUM_ACTIONS)
    finally:
        env.close()


def test_import_is_lazy() -> None:
    code = (
        "import sys, envs, envs.procgen; "
        "assert 'procgen' not in sys.modules and 'gym3' not in sys.modules, 'eager import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_same_seed_same_frames_and_rewards() -> None:
    actions = np.random.default_rng(0).integers(0, NUM_ACTIONS, size=50)
    a, b = ProcgenEnv("bigfish"), ProcgenEnv("bigfish")
    try:
        frames_a, rewards_a = _rollout(a, 123, actions)
        frames_b, rewards_b = _rollout(b, 123, actions)
        # The same env object re-seeded must replay too (reset re-creates the gym3 env).
        frames_c, rewards_c = _rollout(a, 123, actions)
        frames_d, _ = _rollout(b, 124, actions)
    finally:
        a.close()
        b.close()
    assert len(frames_a) == len(frames_b) == len(frames_c)
    for fa, fb, fc in zip(frames_a, frames_b, frames_c, strict=True):
        np.testing.assert_array_equal(fa, fb)
        np.testing.assert_array_equal(fa, fc)
    assert rewards_a == rewards_b == rewards_c
    assert not np.array_equal(frames_a[0], frames_d[0])


def test_seeds_beyond_int32() -> None:
    env = ProcgenEnv("coinrun")
    try:
        seeds = [2**31, 2**31 + 1, 2**63 + 7, 0]
        level_seeds = []
        for seed in seeds:
            level_seeds.append(env.reset(seed=seed)[1]["level_seed"])
            assert env.rand_seed is not None and 0 <= env.rand_seed < 2**31
        first, info = env.reset(seed=2**63 + 7)
        again, info_again = env.reset(seed=2**63 + 7)
    finally:
        env.close()
    assert len(set(level_seeds)) == len(seeds)  # distinct seeds, distinct level streams
    np.testing.assert_array_equal(first, again)
    assert info["level_seed"] == info_again["level_seed"] == level_seeds[2]


@pytest.mark.parametrize("frame_size", [64, 128, 224])
def test_frame_sizes(frame_size: int) -> None:
    env = ProcgenEnv("starpilot", frame_size=frame_size, render_mode="rgb_array")
    try:
        obs, _ = env.reset(seed=0)
        expected = (frame_size, frame_size, 3)
        assert obs.shape == expected and obs.dtype == np.uint8
        assert env.observation_space.contains(obs)
        obs, *_ = env.step(NOOP)
        assert obs.shape == expected and obs.dtype == np.uint8
        assert obs.std() > 0  # a real picture, not a blank buffer
        np.testing.assert_array_equal(env.render(), obs)
    finally:
        env.close()


def test_high_resolution_frames_show_the_native_scene() -> None:
    # The 128 px frame comes from procgen's separate 512 px render: check it is the same scene as
    # the native 64 px observation (box-filtered down, it should be close, not merely similar).
    native, hires = ProcgenEnv("coinrun"), ProcgenEnv("coinrun", frame_size=128)
    try:
        small, _ = native.reset(seed=5)
        big, _ = hires.reset(seed=5)
    finally:
        native.close()
        hires.close()
    down = big.reshape(64, 2, 64, 2, 3).mean(axis=(1, 3))
    assert np.abs(down - small.astype(float)).mean() < 12.0


def test_unknown_game_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown Procgen game 'pong'") as excinfo:
        ProcgenEnv("pong")
    for game in GAMES:
        assert game in str(excinfo.value)


def test_invalid_options_fail_in_python_not_in_procgen() -> None:
    # procgen aborts the whole process on these; the env must refuse them first.
    with pytest.raises(ValueError, match="does not support distribution_mode 'extreme'"):
        ProcgenEnv("coinrun", distribution_mode="extreme")
    with pytest.raises(ValueError, match="frame_size"):
        ProcgenEnv("coinrun", frame_size=1024)


def test_episode_boundaries_match_raw_procgen() -> None:
    """Replay the same actions in a raw gym3 env and check the exact contract, step by step.

    Raw procgen returns, with ``first=True``, the next episode's first frame. Ours must return
    the previous frame again (flagged), end the episode, and hand that next first frame out only
    from ``reset()``, without stepping.
    """
    from procgen import ProcgenGym3Env

    env = ProcgenEnv("chaser")  # random play dies within ~50-250 steps
    obs, info = env.reset(seed=7)
    raw = ProcgenGym3Env(
        num=1,
        env_name="chaser",
        rand_seed=env.rand_seed,
        distribution_mode="easy",
        use_backgrounds=False,
        num_levels=0,
        start_level=0,
    )
    _, raw_ob, raw_first = raw.observe()
    assert raw_first[0]
    np.testing.assert_array_equal(obs, raw_ob["rgb"][0])

    rng = np.random.default_rng(0)
    episodes, steps = 0, 0
    level_seed, prev_obs = info["level_seed"], obs
    try:
        while episodes < 5:
            action = int(rng.integers(NUM_ACTIONS))
            raw.act(np.array([action], dtype=np.int32))
            raw_rew, raw_ob, raw_first = raw.observe()
            obs, reward, terminated, truncated, info = env.step(action)
            steps += 1
            assert reward == raw_rew[0]
            assert info["level_seed"] == level_seed  # never changes inside an episode
            np.testing.assert_array_equal(info["action"], np.array([action], dtype=np.int64))
            np.testing.assert_array_equal(info["executed_action"], info["action"])
            assert info["episode_step"] == steps
            if not raw_first[0]:
                assert not (terminated or truncated or info["frame_is_repeat"])
                np.testing.assert_array_equal(obs, raw_ob["rgb"][0])
                prev_obs = obs
                continue
            # The episode ended inside this step.
            assert terminated != truncated
            assert info["frame_is_repeat"]
            np.testing.assert_array_equal(obs, prev_obs)
            assert not np.array_equal(obs, raw_ob["rgb"][0])  # not the next episode's frame
            with pytest.raises(RuntimeError, match="reset"):
                env.step(NOOP)
            obs, info = env.reset()  # must not step: raw is not stepped here either
            np.testing.assert_array_equal(obs, raw_ob["rgb"][0])
            assert info["level_seed"] == raw.get_info()[0]["level_seed"] != level_seed
            assert info["episode_step"] == 0 and not info["frame_is_repeat"]
            np.testing.assert_array_equal(info["action"], np.array([-1], dtype=np.int64))
            level_seed, prev_obs, steps = info["level_seed"], obs, 0
            episodes += 1
    finally:
        env.close()
        raw.close()


def test_timeout_is_truncation() -> None:
    env = ProcgenEnv("maze")  # standing still in maze neither wins nor dies
    try:
        env.reset(seed=0)
        terminated = truncated = False
        while not (terminated or truncated):
            _, _, terminated, truncated, info = env.step(NOOP)
    finally:
        env.close()
    assert info["episode_step"] == PROCGEN_TIMEOUTS["maze"] == 500
    assert truncated and not terminated
    assert not info["prev_level_complete"]


def test_level_completion_is_termination() -> None:
    # maze easy: scan levels until random play finds the cheese (reward 10, level complete).
    env = ProcgenEnv("maze", num_levels=1, start_level=0)
    rng = np.random.default_rng(0)
    try:
        env.reset(seed=0)
        for _ in range(20_000):
            _, reward, terminated, truncated, info = env.step(int(rng.integers(NUM_ACTIONS)))
            if info["prev_level_complete"]:
                break
            if terminated or truncated:
                env.reset()
    finally:
        env.close()
    assert info["prev_level_complete"] and terminated and not truncated and reward == 10.0


def test_reset_mid_episode_starts_a_new_level() -> None:
    env = ProcgenEnv("coinrun")
    try:
        obs, info = env.reset(seed=1)
        for _ in range(5):
            env.step(NOOP)
        new_obs, new_info = env.reset()
    finally:
        env.close()
    assert new_info["level_seed"] != info["level_seed"]
    assert new_info["episode_step"] == 0
    assert new_obs.shape == obs.shape


def test_timeout_table_matches_procgen() -> None:
    """PROCGEN_TIMEOUTS is read from procgen's serialized Game state (timeout follows fixed fields)."""
    from procgen import ProcgenGym3Env

    def read_timeout(state: bytes) -> int:
        offset = 0

        def read_int() -> int:
            nonlocal offset
            (value,) = struct.unpack_from("<i", state, offset)
            offset += 4
            return value

        def skip_string() -> None:
            nonlocal offset
            length = read_int()  # before `offset +=`, which would read the old offset
            offset += length

        read_int()  # serialize version
        skip_string()  # game name
        for _ in range(17):  # options, level seed range, game type, game index
            read_int()
        for _ in range(2):  # level seed and game random generators: flag + text state
            read_int()
            skip_string()
        for _ in range(4):  # reward, done, level_complete, action
            read_int()
        return read_int()

    for game in GAMES:
        env = ProcgenGym3Env(num=1, env_name=game, rand_seed=0, num_threads=0)
        assert read_timeout(env.get_state()[0]) == PROCGEN_TIMEOUTS[game], game
        env.close()


def test_close_releases_and_reset_reopens() -> None:
    env = ProcgenEnv("coinrun")
    env.reset(seed=0)
    env.close()
    env.close()  # idempotent
    with pytest.raises(RuntimeError):
        env.step(NOOP)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3)
    env.close()


def test_bench_procgen_reports_a_rate() -> None:
    assert bench_procgen("coinrun", 64, seconds=0.05) > 100
