"""Throughput of MultiGrid's renderer and step, and of stock minigrid for comparison.

Each function runs on the calling thread for about ``seconds`` and returns operations per
second of the *least disturbed* of its timing chunks (as ``timeit`` advises: on a shared
machine the slower chunks measure the neighbours, not the code). Call them from one process
per core to measure one core.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

_CHUNKS = 10


def _median_rate(op: Callable[[int], None], seconds: float) -> float:
    """Median ops/s over chunks of ``seconds / _CHUNKS``; ``op(k)`` runs the k-th operation."""
    chunk = seconds / _CHUNKS
    rates: list[float] = []
    k = 0
    for _ in range(_CHUNKS):
        start = time.perf_counter()
        done = 0
        while True:
            op(k)
            k += 1
            done += 1
            elapsed = time.perf_counter() - start
            if elapsed >= chunk:
                break
        rates.append(done / elapsed)
    return float(np.median(rates))


def _random_states(
    num_agents: int, size: int, count: int, seed: int
) -> tuple[list[tuple[int, int]], list[np.ndarray]]:
    """Goal cells and ``count`` agent layouts (int64 ``(N, 2)``) in a ``size`` room."""
    rng = np.random.default_rng(seed)
    interior = np.stack(np.meshgrid(np.arange(1, size - 1), np.arange(1, size - 1)), -1)
    interior = interior.reshape(-1, 2)
    goals = [(int(x), int(y)) for x, y in interior[rng.choice(len(interior), num_agents, False)]]
    layouts = [interior[rng.choice(len(interior), num_agents, False)] for _ in range(count)]
    # Half of the agents stand on goals in some layouts, so agent-on-goal tiles are exercised.
    for layout in layouts[::2]:
        layout[: num_agents // 2] = np.array(goals[: num_agents // 2]).reshape(-1, 2)
        _, first = np.unique(layout, axis=0, return_index=True)
        if len(first) < num_agents:
            layout[:] = interior[rng.choice(len(interior), num_agents, False)]
    return goals, layouts


def bench_renderer(
    num_agents: int = 4, size: int = 32, tile_size: int = 4, seconds: float = 2.0, seed: int = 0
) -> float:
    """Frames/s of :class:`SpriteRenderer.render` over random states with goals."""
    from envs.multigrid.core import build_room
    from envs.multigrid.render import SpriteRenderer

    goals, layouts = _random_states(num_agents, size, 256, seed)
    renderer = SpriteRenderer(num_agents, tile_size)
    renderer.set_layout(build_room(size, goals))
    return _median_rate(lambda k: renderer.render(layouts[k & 255]), seconds)


def bench_env_step(
    num_agents: int = 4,
    size: int = 32,
    tile_size: int = 4,
    seconds: float = 2.0,
    seed: int = 0,
    task: str = "Empty",
) -> float:
    """Steps/s of ``env.step`` (rules, frame, info) with uniform random joint actions.

    Resets (a small share of the time at the default ``max_steps``) are included.
    """
    from envs.multigrid.env import MultiGridEmptyEnv, MultiGridGoalEnv

    env_class = {"Empty": MultiGridEmptyEnv, "Goal": MultiGridGoalEnv}[task]
    env = env_class(num_agents=num_agents, size=size, tile_size=tile_size)
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, 5, (1024, num_agents))

    def op(k: int) -> None:
        _, _, terminated, truncated, _ = env.step(actions[k & 1023])
        if terminated or truncated:
            env.reset()

    return _median_rate(op, seconds)


def bench_minigrid_renderer(
    size: int = 32, tile_size: int = 4, seconds: float = 2.0, highlight: bool = False
) -> float:
    """Frames/s of stock minigrid's ``EmptyEnv(render_mode="rgb_array").render()``.

    ``highlight=False`` times the drawing only; minigrid's default (True) also computes the
    agent's field of view and is slower.
    """
    from minigrid.envs.empty import EmptyEnv

    env = EmptyEnv(size=size, render_mode="rgb_array", tile_size=tile_size, highlight=highlight)
    env.reset(seed=0)
    return _median_rate(lambda k: env.render(), seconds)


def bench_all(seconds: float = 2.0) -> dict[str, float]:
    """The figures reported in the README, as ``{name: ops per second}``."""
    return {
        "render_32x32_128px_N1": bench_renderer(1, 32, 4, seconds),
        "render_32x32_128px_N4": bench_renderer(4, 32, 4, seconds),
        "render_32x32_128px_N16": bench_renderer(16, 32, 4, seconds),
        "render_16x16_64px_N4": bench_renderer(4, 16, 4, seconds),
        "step_32x32_128px_N4": bench_env_step(4, 32, 4, seconds),
        "step_32x32_128px_N16": bench_env_step(16, 32, 4, seconds),
        "minigrid_render_32x32_128px": bench_minigrid_renderer(32, 4, seconds),
        "minigrid_render_16x16_64px": bench_minigrid_renderer(16, 4, seconds),
    }


if __name__ == "__main__":
    for name, rate in bench_all().items():
        print(f"{name:32s} {rate:10.0f}/s")
