"""Episode generation: seeded, independent of the worker count, executed actions recorded."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from latentrl.data.episode import EncodedFrames, Episode, encode_frames
from latentrl.data.generate import (
    GenerationSpec,
    GenerationStats,
    UniformRandom,
    UniformRandomPolicy,
    generate_dataset,
    generate_episodes,
    rollout,
)
from latentrl.data.minari_io import DatasetReader
from tests.data.conftest import DOTS_ID, PROCGEN_LIKE_ID

SPEC = GenerationSpec(DOTS_ID, {"num_agents": 3, "vary_length": True}, max_steps=6)


def assert_same(a: list[Episode], b: list[Episode]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.seed == y.seed
        np.testing.assert_array_equal(x.frame_array(), y.frame_array())
        np.testing.assert_array_equal(x.actions, y.actions)
        np.testing.assert_array_equal(x.rewards, y.rewards)
        assert x.infos.keys() == y.infos.keys()
        for key in x.infos:
            np.testing.assert_array_equal(x.infos[key], y.infos[key])


def test_same_episodes_for_any_worker_count() -> None:
    seeds = range(10, 19)
    one = list(generate_episodes(SPEC, seeds, workers=1))
    assert_same(one, list(generate_episodes(SPEC, seeds, workers=2)))
    assert_same(one, list(generate_episodes(SPEC, seeds, workers=3)))
    assert [e.seed for e in one] == list(seeds)


def test_episode_depends_only_on_its_seed() -> None:
    alone = list(generate_episodes(SPEC, [14]))
    among = list(generate_episodes(SPEC, range(10, 19), workers=2))
    assert_same(alone, among[4:5])


def test_workers_encode_frames_losslessly() -> None:
    episodes = list(generate_episodes(SPEC, range(3), workers=2))
    raw = list(generate_episodes(dataclasses.replace(SPEC, compression=None), range(3)))
    assert all(isinstance(e.frames, EncodedFrames) for e in episodes)
    assert_same(episodes, raw)


def test_shapes_and_executed_actions() -> None:
    env = gym.make(DOTS_ID, num_agents=3, max_steps=50)
    ep = rollout(env, UniformRandomPolicy(env.action_space), seed=3, max_steps=50)
    t = ep.num_steps
    assert ep.frames.shape == (t + 1, 32, 32, 3) and ep.frames.dtype == np.uint8
    assert ep.actions.shape == (t, 3) and ep.actions.dtype == np.int64
    assert ep.positions.shape == (t + 1, 3, 2)
    assert ep.goals.shape == (t + 1, 3, 2)
    # The dataset's actions are the executed ones (blocked moves read 0), not the requested.
    np.testing.assert_array_equal(ep.actions, ep.infos["executed_action"][1:])
    moved = np.abs(np.diff(ep.positions, axis=0)).sum(axis=-1) > 0
    np.testing.assert_array_equal(moved, ep.actions != 0)


def test_max_steps_truncates() -> None:
    spec = GenerationSpec(DOTS_ID, {"max_steps": 100}, max_steps=4)
    (ep,) = generate_episodes(spec, [0])
    assert ep.num_steps == 4
    assert ep.truncations.tolist() == [False, False, False, True]
    assert not ep.terminations.any()


def test_variable_lengths_and_env_termination() -> None:
    episodes = list(generate_episodes(SPEC, range(6)))
    assert [e.num_steps for e in episodes] == [2, 3, 4, 5, 6, 6]
    assert episodes[0].terminations[-1] and not episodes[0].truncations[-1]
    assert episodes[5].truncations[-1]  # cut by max_steps before the env ended it


def test_discrete_single_agent_env() -> None:
    (ep,) = generate_episodes(GenerationSpec(PROCGEN_LIKE_ID), [2])
    assert ep.actions.shape == (ep.num_steps, 1)
    assert ep.infos["frame_is_repeat"][-1] and not ep.infos["frame_is_repeat"][:-1].any()


def test_random_policy_repeat_and_seed() -> None:
    space = gym.spaces.MultiDiscrete([5, 5])
    policy = UniformRandom(repeat=3)(gym.make(DOTS_ID))
    policy.reset(7)
    actions = np.stack([policy.act(None, {}) for _ in range(9)])
    assert (actions[0] == actions[1]).all() and (actions[1] == actions[2]).all()
    other = UniformRandomPolicy(space, repeat=3)
    other.reset(7)
    np.testing.assert_array_equal(actions, np.stack([other.act(None, {}) for _ in range(9)]))
    with pytest.raises(ValueError, match="repeat"):
        UniformRandomPolicy(space, repeat=0)


def test_episode_validates_lengths() -> None:
    frames = np.zeros((3, 4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="T \\+ 1 frames"):
        Episode(frames, np.zeros((3, 1)), np.zeros(3), np.zeros(3, bool), np.zeros(3, bool))
    with pytest.raises(ValueError, match="infos"):
        Episode(
            frames,
            np.zeros((2, 1)),
            np.zeros(2),
            np.zeros(2, bool),
            np.zeros(2, bool),
            infos={"agent_pos": np.zeros((2, 1, 2))},
        )


def test_encode_decode_round_trip() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (5, 8, 12, 3), dtype=np.uint8)
    for compression in ("gzip", "none"):
        encoded = encode_frames(frames, compression)
        assert encoded.shape == (5, 3, 8, 12)
        np.testing.assert_array_equal(encoded.decode(), frames)


def test_generate_dataset_records_stats_and_metadata(root: Path) -> None:
    result = generate_dataset("test/dots-v1", SPEC, range(5), root=root, workers=2)
    stats: GenerationStats = result.stats
    assert stats.episodes == 5 and stats.steps == 2 + 3 + 4 + 5 + 6
    assert stats.raw_bytes == (stats.steps + 5) * 32 * 32 * 3
    with DatasetReader("test/dots-v1", root) as reader:
        assert reader.info["split"] == "val"
        assert reader.info["num_agents"] == 3
        assert reader.info["env_kwargs"]["num_agents"] == 3
        assert reader.episode_steps().tolist() == [2, 3, 4, 5, 6]


class FailingPolicy:
    """Raises on the episode with seed 3 (to test that a worker error leaves no dataset)."""

    def __call__(self, env: gym.Env) -> FailingPolicy:
        self.space = env.action_space
        return self

    def reset(self, seed: int | None = None) -> None:
        if seed == 3:
            raise RuntimeError("policy exploded")

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        return np.zeros(self.space.shape, np.int64)


def test_worker_error_propagates_and_leaves_no_dataset(root: Path) -> None:
    spec = dataclasses.replace(SPEC, policy=FailingPolicy())
    with pytest.raises(RuntimeError, match="policy exploded"):
        generate_dataset("test/dots-v0", spec, range(8), root=root, workers=2)
    assert not (root / "test/dots-v0").exists()
    assert not (root / ".staging").exists()


def test_real_multigrid_same_for_any_worker_count() -> None:
    envs = pytest.importorskip("envs")
    gym.register_envs(envs)
    from envs.multigrid.policies import RandomPolicy

    def policy(env: gym.Env) -> RandomPolicy:
        return RandomPolicy(env.unwrapped.num_agents, repeat=2)

    spec = GenerationSpec("MultiGrid-Empty-8x8-N2-v0", {"max_steps": 5}, policy=policy, max_steps=5)
    one = list(generate_episodes(spec, range(4), workers=1))
    assert_same(one, list(generate_episodes(spec, range(4), workers=2)))
    assert one[0].frame_array().shape == (6, 32, 32, 3)
    assert one[0].positions.shape == (6, 2, 2)
