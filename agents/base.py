"""What every agent offers, and the scripted MultiGrid policies as agents.

An agent acts in a real Gymnasium env from what the env returns: the frame ``obs`` (uint8
``(H, W, 3)`` for MultiGrid) and ``info``. Agents that learned from video (behaviour cloning,
the planner) look only at ``obs`` (and at goal images a wrapper puts in ``info``); the scripted
expert reads positions and goals from ``info``, which is why it is an upper bound, not a peer.

``act`` returns the joint action, int64 ``(N,)`` for ``N`` agents (``MultiDiscrete([5] * N)``).
``reset(seed)`` starts an episode; an agent that draws random numbers draws them from a
generator seeded there, so an evaluation with a fixed seed replays exactly.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from envs.multigrid.policies import ExpertPolicy, RandomPolicy


@runtime_checkable
class Agent(Protocol):
    """``reset(seed)`` then ``act(obs, info)`` once per step."""

    def reset(self, seed: int | None = None) -> None:
        """Start an episode; seed every random draw of the episode from ``seed``."""
        ...

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The joint action, int64 ``(N,)``, for frame ``obs`` and the env's ``info``."""
        ...


def expert_agent(env: gym.Env[Any, Any]) -> Agent:
    """MultiGrid's scripted collision-avoiding expert for ``env`` (Goal tasks; reads ``info``)."""
    return ExpertPolicy.for_env(env)


def random_agent(env: gym.Env[Any, Any], repeat: int = 1) -> Agent:
    """Uniform random joint actions for ``env``'s agents, each draw held ``repeat`` steps."""
    space = env.action_space
    if not isinstance(space, gym.spaces.MultiDiscrete):
        raise TypeError(f"random_agent needs a MultiDiscrete action space, got {space}")
    return RandomPolicy(len(space.nvec), repeat=repeat)
