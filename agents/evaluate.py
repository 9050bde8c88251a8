"""Run an agent in a real env: figures of success (``evaluate``) or its demonstrations (``collect``).

Episode ``i`` resets the env with seed ``seed + i`` and the agent with the same seed, so two
agents evaluated with one seed face the same start and goal cells, and a fixed seed gives the
same figures twice. Shapes: frames uint8 ``(F, H, W, 3)``; joint actions int64 ``(F, N)`` with
-1 on each episode's last frame (the layout of ``latentrl.data.cache.FrameCache``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from agents.base import Agent

EnvSpec = str | Callable[[], gym.Env[Any, Any]]
"""A registered Gymnasium id (made with ``env_kwargs``) or a factory returning a fresh env."""


def make_env(env: EnvSpec, env_kwargs: dict[str, Any] | None = None) -> gym.Env[Any, Any]:
    """A fresh env from an id (MultiGrid ids are registered on import of ``envs``) or factory."""
    if isinstance(env, str):
        import envs  # noqa: F401  (registers MultiGrid and Procgen ids)

        return gym.make(env, **(env_kwargs or {}))
    if env_kwargs:
        raise ValueError("env_kwargs apply to an env id; bake them into the factory instead")
    return env()


@dataclasses.dataclass(frozen=True)
class Episode:
    """One played episode: frames ``(T + 1, H, W, 3)``, requested joint actions ``(T, N)``."""

    frames: np.ndarray
    actions: np.ndarray
    reward: float
    success: bool

    @property
    def length(self) -> int:
        return len(self.actions)


def _check_action(action: np.ndarray, space: gym.Space[Any]) -> np.ndarray:
    action = np.asarray(action, dtype=np.int64)
    if isinstance(space, gym.spaces.MultiDiscrete) and action.shape != space.shape:
        raise ValueError(
            f"the agent returned an action of shape {action.shape}, the env expects "
            f"{space.shape}: was it trained for another number of agents?"
        )
    return action


def play(agent: Agent, env: gym.Env[Any, Any], seed: int, keep_frames: bool = False) -> Episode:
    """One episode of ``agent`` in ``env`` from reset seed ``seed`` (the agent reset with it)."""
    obs, info = env.reset(seed=seed)
    agent.reset(seed)
    frames = [obs] if keep_frames else []
    actions: list[np.ndarray] = []
    total, done, success = 0.0, False, False
    while not done:
        action = _check_action(agent.act(obs, info), env.action_space)
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
        if keep_frames:
            frames.append(obs)
        total += float(reward)
        done = terminated or truncated
        # Success is what the env reports at the end (every agent on its own goal).
        success = bool(terminated and info.get("success", False))
    shape = env.action_space.shape or (1,)
    return Episode(
        np.stack(frames) if keep_frames else np.empty((0,), np.uint8),
        np.stack(actions).reshape(len(actions), *shape)
        if actions
        else np.empty((0, *shape), np.int64),
        total,
        success,
    )


def evaluate(
    agent: Agent,
    env: EnvSpec,
    episodes: int = 100,
    seed: int = 0,
    *,
    env_kwargs: dict[str, Any] | None = None,
    per_episode: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Success rate, return and length of ``agent`` over ``episodes`` seeded episodes.

    Args:
        agent: anything with ``reset(seed)`` and ``act(obs, info)``.
        env: env id (with ``env_kwargs``) or a factory.
        episodes: number of episodes; episode ``i`` uses seed ``seed + i``.
        seed: seed of the first episode.
        env_kwargs: ``gym.make`` keyword arguments when ``env`` is an id.
        per_episode: also return the per-episode lists (for paired comparisons).
        progress: show a tqdm bar.

    Returns:
        ``success_rate`` (episodes that ended with every agent on its own goal), ``mean_return``,
        ``std_return``, ``mean_length``, ``episodes``, ``seed`` (and ``success``, ``return``,
        ``length`` lists with ``per_episode``).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    instance = make_env(env, env_kwargs)
    try:
        played = [
            play(agent, instance, seed + i)
            for i in tqdm(range(episodes), desc="evaluate", disable=not progress)
        ]
    finally:
        instance.close()
    returns = np.array([e.reward for e in played])
    out: dict[str, Any] = {
        "success_rate": float(np.mean([e.success for e in played])),
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "mean_length": float(np.mean([e.length for e in played])),
        "episodes": episodes,
        "seed": seed,
    }
    if per_episode:
        out["success"] = [e.success for e in played]
        out["return"] = returns.tolist()
        out["length"] = [e.length for e in played]
    return out


def collect(
    agent: Agent,
    env: EnvSpec,
    episodes: int,
    seed: int = 0,
    *,
    env_kwargs: dict[str, Any] | None = None,
    only_successes: bool = False,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Demonstrations of ``agent``: frames and the actions taken from them, back to back.

    Args:
        agent, env, episodes, seed, env_kwargs, progress: as :func:`evaluate`.
        only_successes: keep only episodes that ended in success (a filtered expert).

    Returns:
        frames uint8 ``(F, H, W, 3)``, actions int64 ``(F, N)`` (-1 on each episode's last
        frame), episode starts int64 ``(E + 1,)``.
    """
    instance = make_env(env, env_kwargs)
    frames: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    lengths: list[int] = []
    try:
        for i in tqdm(range(episodes), desc="collect", disable=not progress):
            ep = play(agent, instance, seed + i, keep_frames=True)
            if only_successes and not ep.success:
                continue
            frames.append(ep.frames)
            last = np.full((1, ep.actions.shape[1]), -1, np.int64)  # no action after the end
            actions.append(np.concatenate([ep.actions, last]))
            lengths.append(len(ep.frames))
    finally:
        instance.close()
    if not frames:
        raise ValueError("no episode to keep: every episode failed (only_successes=True)")
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return np.concatenate(frames), np.concatenate(actions).astype(np.int64), starts
