"""MultiGrid behaviour policies: random with repeat, expert, noisy expert, mixed."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from envs.multigrid.env import MultiGridEmptyEnv, MultiGridGoalEnv
from envs.multigrid.policies import (
    ExpertPolicy,
    MixedPolicy,
    MultiGridPolicy,
    NoisyExpertPolicy,
    PolicyFactory,
    RandomPolicy,
)


def _change_steps(actions: np.ndarray) -> list[np.ndarray]:
    """Per agent, the steps t >= 1 at which its action differs from step t - 1."""
    return [np.flatnonzero(np.diff(actions[:, i])) + 1 for i in range(actions.shape[1])]


@pytest.mark.parametrize("repeat", [1, 4, 7])
def test_random_policy_repeats_each_agents_draw(repeat: int) -> None:
    policy = RandomPolicy(num_agents=8, repeat=repeat, seed=0)
    actions = np.stack([policy.act(np.zeros(1), {}) for _ in range(400)])
    assert actions.shape == (400, 8) and actions.dtype == np.int64
    assert actions.min() >= 0 and actions.max() <= 4
    phases = set()
    for changes in _change_steps(actions):
        assert len(changes) > 400 / repeat / 3  # it does draw again
        if len(changes):
            # Every change falls on the agent's own draw boundary: a run of draws lasts repeat.
            assert len(set(changes % repeat)) == 1
            phases.add(int(changes[0] % repeat))
    if repeat > 1:
        assert len(phases) > 1  # agents are out of phase
    # Uniform over the 5 actions.
    counts = np.bincount(actions.ravel(), minlength=5)
    assert counts.min() > 0.5 * counts.mean()


def test_random_policy_is_seeded() -> None:
    policy = RandomPolicy(num_agents=4, repeat=3)
    runs = []
    for _ in range(2):
        policy.reset(seed=5)
        runs.append(np.stack([policy.act(np.zeros(1), {}) for _ in range(30)]))
    np.testing.assert_array_equal(runs[0], runs[1])
    policy.reset(seed=6)
    assert not np.array_equal(runs[0], np.stack([policy.act(np.zeros(1), {}) for _ in range(30)]))


def _run_expert(
    num_agents: int, size: int, episodes: int, policy_class: type = ExpertPolicy, **kwargs
) -> tuple[float, int]:
    """Success rate and number of steps where the env blocked a requested move."""
    env = MultiGridGoalEnv(num_agents=num_agents, size=size)
    policy = policy_class(passable=env.passable, **kwargs)
    successes = blocked = 0
    for seed in range(episodes):
        obs, info = env.reset(seed=seed)
        policy.reset(seed=seed)
        terminated = truncated = False
        while not (terminated or truncated):
            action = policy.act(obs, info)
            obs, reward, terminated, truncated, info = env.step(action)
            blocked += int((info["executed_action"] != action).any())
        successes += int(terminated)
        assert reward > 0 if terminated else reward == 0
    return successes / episodes, blocked


def test_expert_solves_four_agents_in_32x32() -> None:
    success, blocked = _run_expert(4, 32, episodes=100)
    assert success >= 0.99
    assert blocked == 0  # its plans are conflict-free under the env's rules


@pytest.mark.slow
@pytest.mark.parametrize(("num_agents", "size"), [(4, 32), (8, 32), (16, 32), (16, 16), (4, 8)])
def test_expert_success_rate(num_agents: int, size: int) -> None:
    success, blocked = _run_expert(num_agents, size, episodes=300)
    assert success >= 0.99
    assert blocked == 0


def test_expert_with_crowd_and_narrow_room() -> None:
    success, blocked = _run_expert(16, 16, episodes=20)
    assert success >= 0.95 and blocked == 0
    success, _ = _run_expert(4, 8, episodes=50)
    assert success >= 0.95


def test_noisy_expert_still_succeeds_and_is_noisy() -> None:
    success, blocked = _run_expert(4, 32, episodes=30, policy_class=NoisyExpertPolicy, eps=0.1)
    assert success >= 0.9
    assert blocked > 0  # random moves do bump into walls and agents
    env = MultiGridGoalEnv(num_agents=4, size=32)
    obs, info = env.reset(seed=0)
    expert, noisy = ExpertPolicy.for_env(env, seed=0), NoisyExpertPolicy.for_env(env, 0, eps=1.0)
    differ = sum(int((expert.act(obs, info) != noisy.act(obs, info)).any()) for _ in range(20))
    assert differ > 10
    zero = NoisyExpertPolicy.for_env(env, seed=0, eps=0.0)
    expert.reset(seed=0)
    np.testing.assert_array_equal(zero.act(obs, info), expert.act(obs, info))


def _episode_actions(env: MultiGridGoalEnv, policy: MultiGridPolicy, seed: int) -> np.ndarray:
    """The joint actions of one whole episode of ``policy`` from ``seed``."""
    obs, info = env.reset(seed=seed)
    policy.reset(seed=seed)
    actions, done = [], False
    while not done:
        actions.append(policy.act(obs, info))
        obs, _, terminated, truncated, info = env.step(actions[-1])
        done = terminated or truncated
    return np.stack(actions)


def test_mixed_policy_plays_whole_episodes_of_either_policy() -> None:
    env = MultiGridGoalEnv(num_agents=4, size=16, max_steps=48)
    mixed = PolicyFactory("mixed", repeat=1, expert_share=0.5)(env)
    assert isinstance(mixed, MixedPolicy)
    expert, rand = ExpertPolicy.for_env(env), RandomPolicy(4)
    kinds = []
    for seed in range(40):
        got = _episode_actions(env, mixed, seed)
        is_expert = mixed.active is mixed.expert
        kinds.append(is_expert)
        want = _episode_actions(env, expert if is_expert else rand, seed)
        np.testing.assert_array_equal(got, want)  # the pure policy's episode, move for move
        np.testing.assert_array_equal(_episode_actions(env, mixed, seed), got)  # seeded
    assert 10 <= sum(kinds) <= 30  # about half of 40 (binomial sd 3.2)
    for share, want_expert in ((0.0, False), (1.0, True)):
        only = PolicyFactory("mixed", expert_share=share)(env)
        for seed in range(5):
            only.reset(seed)
            assert (only.active is only.expert) == want_expert
    with pytest.raises(ValueError, match="expert_share"):
        PolicyFactory("mixed", expert_share=1.5)


def test_expert_is_seeded_and_leaves_info_alone() -> None:
    env = MultiGridGoalEnv(num_agents=8, size=16)
    policy = ExpertPolicy(size=16)
    runs = []
    for _ in range(2):
        obs, info = env.reset(seed=3)
        policy.reset(seed=3)
        actions = []
        for _ in range(20):
            before = copy.deepcopy(info)
            actions.append(policy.act(obs, info))
            for key in info:
                np.testing.assert_array_equal(info[key], before[key])
            obs, *_, info = env.step(actions[-1])
        runs.append(np.stack(actions))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_expert_needs_goals() -> None:
    env = MultiGridEmptyEnv(num_agents=2, size=8)
    obs, info = env.reset(seed=0)
    with pytest.raises(ValueError, match="goals"):
        ExpertPolicy(size=8).act(obs, info)


def test_resting_agents_make_way_into_a_corner() -> None:
    # Agent 0's goal is the corner (1, 1); agents 1 and 2 rest on the corner's two neighbours.
    env = MultiGridGoalEnv(num_agents=3, size=8)
    env.reset(seed=0)
    obs, info = env.set_state([(4, 4), (1, 2), (2, 1)], goal_pos=[(1, 1), (1, 2), (2, 1)])
    policy = ExpertPolicy(size=8, seed=0)
    for _ in range(40):
        obs, _, terminated, _, info = env.step(policy.act(obs, info))
        if terminated:
            break
    assert terminated


def test_swap_deadlock_is_broken() -> None:
    # Each agent stands on the other's goal: the direct fix, a swap, is forbidden.
    env = MultiGridGoalEnv(num_agents=2, size=8)
    env.reset(seed=0)
    obs, info = env.set_state([(3, 3), (3, 4)], goal_pos=[(3, 4), (3, 3)])
    policy = ExpertPolicy(size=8, seed=0)
    for _ in range(40):
        obs, _, terminated, _, info = env.step(policy.act(obs, info))
        if terminated:
            break
    assert terminated
