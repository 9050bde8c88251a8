"""The goal image as an observation: a wrapper that puts it into ``info["goal_frame"]``.

Goal-conditioned agents (the planner) are given the task as a picture, the frame with every
agent on its own goal (:meth:`envs.multigrid.env.MultiGridEnv.goal_frame`), not as coordinates.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np


class GoalFrame(gym.Wrapper[np.ndarray, np.ndarray, np.ndarray, np.ndarray]):
    """Adds ``info["goal_frame"]``, uint8 ``(H, W, 3)``, on reset and on every step."""

    def __init__(self, env: gym.Env[np.ndarray, np.ndarray]) -> None:
        super().__init__(env)
        if not hasattr(env.unwrapped, "goal_frame"):
            raise TypeError(
                f"{env.unwrapped.__class__.__name__} has no goal_frame(): the goal image exists "
                "only for MultiGrid tasks"
            )
        self._goal: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._goal = self.env.unwrapped.goal_frame()  # type: ignore[attr-defined]
        return obs, {**info, "goal_frame": self._goal}

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "goal_frame": self._goal}
