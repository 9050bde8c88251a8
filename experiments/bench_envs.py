"""Throughput of the environments and the dataset path, printed as a table.

    python experiments/bench_envs.py [--seconds 1.0] [--rounds 3]

Measures, interleaved over ``--rounds`` so that machine noise hits every figure alike:
MultiGrid renderer frames/s (1, 4, 16 agents; 64 and 128 px) beside stock minigrid's renderer,
MultiGrid env steps/s, Procgen steps/s (native 64 px and 128 px), and dataset write/read MB/s.
Each figure is the median over rounds (each round is itself a median over short chunks).
Then the scripted Goal expert's success rate for 4, 8 and 16 agents on 32x32 cells.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable

import numpy as np

from envs.multigrid.bench import bench_env_step, bench_minigrid_renderer, bench_renderer
from envs.procgen import bench_procgen
from latentrl.data.bench import bench_dataset_io


def expert_success(
    num_agents: int, size: int, episodes: int, first_seed: int = 10_000
) -> tuple[float, float]:
    """Success rate and mean episode length of the scripted expert on ``Goal``."""
    from envs.multigrid.env import MultiGridGoalEnv
    from envs.multigrid.policies import ExpertPolicy

    env = MultiGridGoalEnv(num_agents=num_agents, size=size)
    wins, lengths = 0, []
    for i in range(episodes):
        obs, info = env.reset(seed=first_seed + i)
        policy = ExpertPolicy.for_env(env, seed=first_seed + i)
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(policy.act(obs, info))
        wins += bool(info["success"])
        lengths.append(env.step_count)
    return wins / episodes, float(np.mean(lengths))


def hardware() -> str:
    """A one-line description of this machine for results tables."""
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per figure per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions (median)")
    parser.add_argument(
        "--io-episodes", type=int, default=64, help="episodes in the dataset I/O test"
    )
    parser.add_argument(
        "--expert-episodes", type=int, default=200, help="episodes per expert success figure"
    )
    args = parser.parse_args()
    s = args.seconds

    figures: dict[str, tuple[str, Callable[[], float]]] = {
        "MultiGrid render 32x32 cells, 128 px, 1 agent": (
            "frames/s",
            lambda: bench_renderer(1, 32, 4, s),
        ),
        "MultiGrid render 32x32 cells, 128 px, 4 agents": (
            "frames/s",
            lambda: bench_renderer(4, 32, 4, s),
        ),
        "MultiGrid render 32x32 cells, 128 px, 16 agents": (
            "frames/s",
            lambda: bench_renderer(16, 32, 4, s),
        ),
        "MultiGrid render 16x16 cells, 64 px, 1 agent": (
            "frames/s",
            lambda: bench_renderer(1, 16, 4, s),
        ),
        "MultiGrid render 16x16 cells, 64 px, 4 agents": (
            "frames/s",
            lambda: bench_renderer(4, 16, 4, s),
        ),
        "MultiGrid render 16x16 cells, 64 px, 16 agents": (
            "frames/s",
            lambda: bench_renderer(16, 16, 4, s),
        ),
        "stock minigrid render 32x32 cells, 128 px, 1 agent": (
            "frames/s",
            lambda: bench_minigrid_renderer(32, 4, s),
        ),
        "stock minigrid render 16x16 cells, 64 px, 1 agent": (
            "frames/s",
            lambda: bench_minigrid_renderer(16, 4, s),
        ),
        "MultiGrid env.step 32x32, 4 agents": ("steps/s", lambda: bench_env_step(4, 32, 4, s)),
        "MultiGrid env.step 32x32, 16 agents": ("steps/s", lambda: bench_env_step(16, 32, 4, s)),
        "Procgen coinrun 64 px (native)": ("steps/s", lambda: bench_procgen("coinrun", 64, s)),
        "Procgen starpilot 64 px (native)": ("steps/s", lambda: bench_procgen("starpilot", 64, s)),
        "Procgen coinrun 128 px (512 px render, resampled)": (
            "steps/s",
            lambda: bench_procgen("coinrun", 128, s),
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in figures}
    io: list[dict[str, float]] = []
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds} ...", flush=True)
        for name, (_, fn) in figures.items():
            samples[name].append(fn())
        io.append(bench_dataset_io(episodes=args.io_episodes, workers=1))

    print(f"\nHardware: {hardware()}; medians over {args.rounds} interleaved rounds\n")
    print("| figure | median | min | max | unit |\n|---|---:|---:|---:|---|")
    for name, (unit, _) in figures.items():
        v = np.array(samples[name])
        print(f"| {name} | {np.median(v):,.0f} | {v.min():,.0f} | {v.max():,.0f} | {unit} |")
    ratio = np.array(samples["MultiGrid render 32x32 cells, 128 px, 1 agent"]) / np.array(
        samples["stock minigrid render 32x32 cells, 128 px, 1 agent"]
    )
    print(
        f"| MultiGrid / stock minigrid, 128 px, 1 agent (paired per round) | {np.median(ratio):,.0f}x | "
        f"{ratio.min():,.0f}x | {ratio.max():,.0f}x | ratio |"
    )
    for key, label in [
        ("write_mb_s", "dataset write (encode + HDF5), one process"),
        ("read_mb_s", "dataset read into the frame cache"),
        ("compression_ratio", "compression ratio (raw / stored)"),
    ]:
        v = np.array([d[key] for d in io])
        unit = "x" if key == "compression_ratio" else "MB/s (raw frame bytes)"
        print(f"| {label} | {np.median(v):,.1f} | {v.min():,.1f} | {v.max():,.1f} | {unit} |")
    print(
        f"\nScripted Goal expert, 32x32 cells, {args.expert_episodes} episodes (seeds from 10000):"
    )
    for n in (4, 8, 16):
        rate, length = expert_success(n, 32, args.expert_episodes)
        print(f"  {n:2d} agents: success {rate:.3f}, mean episode length {length:.1f} steps")


if __name__ == "__main__":
    main()
