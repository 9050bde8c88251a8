"""Fixtures for the data-layer tests: two tiny fake envs and a temporary datasets root.

``LatentrlTest-Dots-v0``: N coloured squares on a seeded noise background moving on a grid
(MultiGrid's contract: MultiDiscrete([5] * N), info ``agent_pos``/``goal_pos``/``action``/
``executed_action``/``success``); with ``vary_length`` an episode ends after ``2 + seed % 6``
steps, so episodes have different lengths.

``LatentrlTest-ProcgenLike-v0``: single agent, Discrete(15), episodes of ``3 + seed % 5``
actions whose last frame repeats the one before with ``info["frame_is_repeat"]`` (Procgen's
contract in ``envs/procgen.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

DOTS_ID = "LatentrlTest-Dots-v0"
PROCGEN_LIKE_ID = "LatentrlTest-ProcgenLike-v0"
_MOVES = np.array([(0, 0), (1, 0), (0, 1), (-1, 0), (0, -1)], np.int64)


class DotsEnv(gym.Env):
    """N coloured squares on a noise background (see module docstring)."""

    metadata = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        num_agents: int = 2,
        size: int = 8,
        tile_size: int = 4,
        max_steps: int = 10,
        vary_length: bool = False,
    ) -> None:
        self.num_agents, self.size, self.tile = num_agents, size, tile_size
        self.max_steps, self.vary_length = max_steps, vary_length
        px = size * tile_size
        self.observation_space = gym.spaces.Box(0, 255, (px, px, 3), np.uint8)
        self.action_space = gym.spaces.MultiDiscrete([5] * num_agents)
        self.colors = (np.arange(num_agents)[:, None] * [60, 110, 170] % 200 + 55).astype(np.uint8)

    def _obs(self) -> np.ndarray:
        frame = self.background.copy()
        for (x, y), color in zip(self.pos, self.colors, strict=True):
            t = self.tile
            frame[y * t : (y + 1) * t, x * t : (x + 1) * t] = color
        return frame

    def _info(self, action: np.ndarray, executed: np.ndarray) -> dict[str, Any]:
        return {
            "agent_pos": self.pos.copy(),
            "goal_pos": np.full((self.num_agents, 2), -1, np.int64),
            "action": action.astype(np.int64),
            "executed_action": executed.astype(np.int64),
            "success": False,
            "tile_color": self.colors.copy(),  # a uint8 info array
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        px = self.size * self.tile
        self.background = rng.integers(0, 40, (px, px, 3), dtype=np.uint8)
        cells = rng.choice(self.size * self.size, self.num_agents, replace=False)
        self.pos = np.stack([cells % self.size, cells // self.size], axis=1).astype(np.int64)
        self.t = 0
        self.length = 2 + (seed or 0) % 6 if self.vary_length else None
        none = np.zeros(self.num_agents, np.int64)
        return self._obs(), self._info(none, none)

    def step(self, action):
        action = np.asarray(action, np.int64)
        target = self.pos + _MOVES[action]
        inside = ((target >= 0) & (target < self.size)).all(axis=1)
        executed = np.where(inside, action, 0)
        self.pos = np.where(inside[:, None], target, self.pos)
        self.t += 1
        terminated = self.length is not None and self.t >= self.length
        truncated = not terminated and self.t >= self.max_steps
        return self._obs(), 0.5, terminated, truncated, self._info(action, executed)


class ProcgenLikeEnv(gym.Env):
    """One agent, Discrete(15), last frame of an episode is a flagged repeat."""

    metadata = {"render_modes": []}  # noqa: RUF012

    def __init__(self, frame_size: int = 16) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (frame_size, frame_size, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(15)
        self.frame_size = frame_size

    def _info(self, action: int, repeat: bool) -> dict[str, Any]:
        a = np.array([action], np.int64)
        return {"action": a, "executed_action": a.copy(), "frame_is_repeat": repeat}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.length = 3 + (seed or 0) % 5
        self.t = 0
        s = self.frame_size
        self.obs = self.np_random.integers(0, 256, (s, s, 3), dtype=np.uint8)
        return self.obs.copy(), self._info(-1, False)

    def step(self, action: int):
        self.t += 1
        last = self.t >= self.length
        if not last:
            self.obs = self.np_random.integers(0, 256, self.obs.shape, dtype=np.uint8)
        return self.obs.copy(), 1.0, last, False, self._info(int(action), last)


def _register() -> None:
    if DOTS_ID not in gym.registry:
        # String entry points, so that a dataset's env spec is serialisable.
        gym.register(DOTS_ID, entry_point="tests.data.conftest:DotsEnv")
    if PROCGEN_LIKE_ID not in gym.registry:
        gym.register(PROCGEN_LIKE_ID, entry_point="tests.data.conftest:ProcgenLikeEnv")


_register()  # before any test forks generation workers, so they inherit the ids


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty datasets root; MINARI_DATASETS_PATH points at it so nothing lands in ~/.minari."""
    path = tmp_path / "datasets"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(path))
    return path
