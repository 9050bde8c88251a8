"""The MultiGrid benchmark helpers run and report plausible rates (speed itself is not tested:
CI machines are shared)."""

from __future__ import annotations

from envs.multigrid.bench import bench_env_step, bench_minigrid_renderer, bench_renderer


def test_bench_helpers_return_positive_rates() -> None:
    assert bench_renderer(num_agents=4, size=16, tile_size=4, seconds=0.05) > 0
    assert bench_env_step(num_agents=2, size=8, tile_size=4, seconds=0.05, task="Goal") > 0
    assert bench_minigrid_renderer(size=8, tile_size=4, seconds=0.05) > 0
