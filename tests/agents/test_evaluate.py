"""Agent evaluation and demonstration collection: seeded determinism, figures, clear errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agents.base import Agent, expert_agent, random_agent
from agents.evaluate import collect, evaluate, make_env

ENV = "MultiGrid-Goal-8x8-N2-v0"


class SamplingAgent:
    """Random actions from a generator seeded by ``reset``, like a stochastic policy."""

    def __init__(self, agents: int) -> None:
        self.agents = agents
        self.rng = np.random.default_rng()

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return self.rng.integers(0, 5, self.agents)


def test_fixed_seed_gives_the_same_figures_twice() -> None:
    first = evaluate(SamplingAgent(2), ENV, episodes=8, seed=3, per_episode=True)
    again = evaluate(SamplingAgent(2), ENV, episodes=8, seed=3, per_episode=True)
    assert first == again
    env = make_env(ENV)
    lengths = [
        evaluate(expert_agent(env), ENV, episodes=8, seed=s, per_episode=True)["length"]
        for s in (3, 4)
    ]
    assert lengths[0] != lengths[1]  # the seed picks the episodes
    assert first["episodes"] == 8 and first["seed"] == 3


def test_expert_succeeds_and_random_play_mostly_fails() -> None:
    env = make_env(ENV)
    expert = evaluate(expert_agent(env), ENV, episodes=20, seed=0, per_episode=True)
    assert expert["success_rate"] == 1.0
    # Reward 1 - 0.9 t / max_steps on success: the return follows from the length.
    max_steps = env.unwrapped.max_steps
    expected = [1 - 0.9 * n / max_steps for n in expert["length"]]
    np.testing.assert_allclose(expert["return"], expected)
    rand = evaluate(random_agent(env), ENV, episodes=20, seed=0)
    assert rand["success_rate"] < 0.5
    assert rand["mean_return"] < expert["mean_return"]


def test_agents_follow_the_protocol() -> None:
    env = make_env(ENV)
    assert isinstance(expert_agent(env), Agent)
    assert isinstance(random_agent(env, repeat=2), Agent)
    assert isinstance(SamplingAgent(2), Agent)


def test_collect_lays_episodes_out_like_the_frame_cache() -> None:
    env = make_env(ENV)
    frames, actions, starts = collect(expert_agent(env), ENV, episodes=5, seed=0)
    lengths = evaluate(expert_agent(env), ENV, episodes=5, seed=0, per_episode=True)["length"]
    assert frames.dtype == np.uint8 and frames.shape[1:] == (32, 32, 3)
    np.testing.assert_array_equal(np.diff(starts), np.array(lengths) + 1)
    assert len(frames) == len(actions) == starts[-1]
    last = starts[1:] - 1
    assert (actions[last] == -1).all()
    assert (np.delete(actions, last, axis=0) >= 0).all()
    # Replaying the collected actions from the same seed reproduces the frames.
    obs, _ = env.reset(seed=0)
    for f in range(starts[1] - 1):
        np.testing.assert_array_equal(obs, frames[f])
        obs, *_ = env.step(actions[f])


def test_wrong_agent_count_and_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="another number of agents"):
        evaluate(SamplingAgent(3), ENV, episodes=1)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        evaluate(SamplingAgent(2), ENV, episodes=0)
    with pytest.raises(ValueError, match="factory"):
        evaluate(SamplingAgent(2), lambda: make_env(ENV), episodes=1, env_kwargs={"size": 8})
