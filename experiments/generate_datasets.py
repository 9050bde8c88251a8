"""Generate the action-free video datasets (MultiGrid, Procgen) as lossless Minari datasets.

One dataset per (agent count | game) and split, named by the convention of
``latentrl.data.naming`` (``multigrid/empty-agent_4-v0`` train, ``-v1`` validation, ``-v2``
test). Examples::

    # the paper's MultiGrid data: 32x32 cells at 4 px (128x128 frames), random agents
    python experiments/generate_datasets.py --env multigrid --task empty --agents 1 2 4 8 16 \\
        --episodes 1000 --steps 64

    # goal-reaching experts (for behaviour cloning from video)
    python experiments/generate_datasets.py --env multigrid --task goal --policy expert \\
        --agents 4 --episodes 1000

    # Procgen, native 64x64 frames
    python experiments/generate_datasets.py --env procgen --games coinrun bigfish --episodes 500

    # a tiny smoke test
    python experiments/generate_datasets.py --agents 2 --size 8 --episodes 4 --steps 8 --root /tmp/ds
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

import envs
from latentrl.data.generate import GenerationSpec, UniformRandom, generate_dataset
from latentrl.data.minari_io import dataset_exists, resolve_root
from latentrl.data.naming import (
    DEFAULT_GRID_SIZE,
    DEFAULT_TILE_SIZE,
    PROCGEN_NATIVE_SIZE,
    SPLITS,
    multigrid_dataset_id,
    procgen_dataset_id,
    split_counts,
    split_seed_ranges,
)

gym.register_envs(envs)


@dataclass(frozen=True)
class MultiGridPolicy:
    """Builds a MultiGrid behaviour policy inside each worker (picklable)."""

    name: str
    repeat: int = 1
    eps: float = 0.1

    def __call__(self, env: gym.Env) -> Any:
        from envs.multigrid.policies import ExpertPolicy, NoisyExpertPolicy, RandomPolicy

        base = env.unwrapped
        if self.name == "random":
            return RandomPolicy(base.num_agents, repeat=self.repeat)
        if self.name == "expert":
            return ExpertPolicy.for_env(env)
        return NoisyExpertPolicy(eps=self.eps, passable=base.passable)


@dataclass(frozen=True)
class Job:
    """One dataset family (all splits of one agent count or game)."""

    ids: tuple[str, ...]  # one per split, "" where the split has no episodes
    spec: GenerationSpec
    metadata: dict[str, Any]
    description: str


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Load the result with latentrl.data.cache.FrameCache.load(ids, root=ROOT), or "
        'with Minari: MINARI_DATASETS_PATH=ROOT python -c "import minari; '
        "minari.load_dataset('multigrid/empty-agent_4-v0')\" (frames are channel-first there).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    env = parser.add_argument_group("environment")
    env.add_argument(
        "--env",
        choices=("multigrid", "procgen"),
        default="multigrid",
        help="which simulator to record",
    )
    env.add_argument(
        "--agents",
        type=int,
        nargs="+",
        default=[4],
        metavar="N",
        help="MultiGrid: agent counts, one dataset per count",
    )
    env.add_argument(
        "--task",
        choices=("empty", "goal"),
        default="empty",
        help="MultiGrid: empty room, or room with one goal cell per agent",
    )
    env.add_argument(
        "--size",
        type=int,
        default=DEFAULT_GRID_SIZE,
        help="MultiGrid: room side in cells, walls included",
    )
    env.add_argument(
        "--tile-size",
        type=int,
        default=DEFAULT_TILE_SIZE,
        help="MultiGrid: pixels per cell (frames are size*tile-size pixels)",
    )
    env.add_argument(
        "--games",
        nargs="+",
        default=["coinrun"],
        metavar="GAME",
        help="Procgen: games, one dataset per game (see envs.procgen.GAMES)",
    )
    env.add_argument(
        "--frame-size",
        type=int,
        default=PROCGEN_NATIVE_SIZE,
        help="Procgen: frame side in pixels (64 is native; others are resampled)",
    )

    pol = parser.add_argument_group("behaviour policy")
    pol.add_argument(
        "--policy",
        choices=("random", "expert", "noisy-expert"),
        default="random",
        help="random actions, scripted goal-reaching expert (MultiGrid goal "
        "task), or expert with random actions at rate --eps",
    )
    pol.add_argument(
        "--repeat", type=int, default=1, help="random policy: steps each random action is held"
    )
    pol.add_argument(
        "--eps",
        type=float,
        default=0.1,
        help="noisy-expert: per-agent probability of a random action per step",
    )

    data = parser.add_argument_group("episodes and splits")
    data.add_argument(
        "--episodes", type=int, default=1000, help="episodes per dataset family, over all splits"
    )
    data.add_argument(
        "--steps",
        type=int,
        default=64,
        help="episode length cap T (frames = T + 1); MultiGrid's max_steps",
    )
    data.add_argument(
        "--splits",
        type=float,
        nargs=3,
        default=[80, 10, 10],
        metavar=("TRAIN", "VAL", "TEST"),
        help="train/val/test proportions of --episodes (ratios; 0 skips a split). "
        "Written as -v0/-v1/-v2 with disjoint seeds",
    )
    data.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the first episode; episode i of the family uses seed+i",
    )

    out = parser.add_argument_group("output")
    out.add_argument(
        "--root",
        type=Path,
        default=None,
        help="datasets root (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)",
    )
    out.add_argument(
        "--workers",
        type=int,
        default=2,
        help="generation processes (the result does not depend on it)",
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="replace datasets that already exist (otherwise refuse)",
    )
    out.add_argument(
        "--compression",
        choices=("gzip", "none"),
        default="gzip",
        help="frame storage: lossless deflate (small, fast to read) or raw",
    )
    out.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    if args.episodes < 1 or args.steps < 1:
        parser.error("--episodes and --steps must be >= 1")
    if args.env == "multigrid" and args.policy != "random" and args.task != "goal":
        parser.error(f"--policy {args.policy} walks agents to their goals: use --task goal")
    if args.env == "procgen" and args.policy != "random":
        parser.error("Procgen has no scripted expert here: use --policy random")
    if args.env == "procgen":
        from envs.procgen import GAMES

        unknown = sorted(set(args.games) - set(GAMES))
        if unknown:
            parser.error(f"unknown games {unknown}; choose from {', '.join(GAMES)}")
    try:
        split_counts(args.episodes, args.splits)
    except ValueError as e:
        parser.error(f"--splits: {e}")
    return args


def build_jobs(args: argparse.Namespace) -> list[Job]:
    counts = split_counts(args.episodes, args.splits)
    jobs = []
    policy_kwargs = {"repeat": args.repeat} if args.policy == "random" else {}
    if args.policy == "noisy-expert":
        policy_kwargs = {"eps": args.eps}
    common = {
        "policy": args.policy,
        "policy_kwargs": policy_kwargs,
        "base_seed": args.seed,
        "split_counts": dict(zip(SPLITS, counts, strict=True)),
        "generator": "experiments/generate_datasets.py",
    }
    if args.env == "multigrid":
        from envs.multigrid.registration import multigrid_env_id, multigrid_env_ids

        for n in args.agents:
            # Any registered id of the task works: the kwargs below set size and team.
            env_id = multigrid_env_id(args.task.capitalize(), args.size, n)
            if env_id not in multigrid_env_ids():
                env_id = multigrid_env_id(args.task.capitalize(), DEFAULT_GRID_SIZE, 1)
            kwargs = {
                "num_agents": n,
                "size": args.size,
                "tile_size": args.tile_size,
                "max_steps": args.steps,
            }
            ids = tuple(
                multigrid_dataset_id(
                    args.task,
                    n,
                    policy=args.policy,
                    size=args.size,
                    tile_size=args.tile_size,
                    split=split,
                )
                if c
                else ""
                for split, c in zip(SPLITS, counts, strict=True)
            )
            spec = GenerationSpec(
                env_id,
                kwargs,
                policy=MultiGridPolicy(args.policy, args.repeat, args.eps),
                max_steps=args.steps,
                compression=args.compression,
                imports=("envs",),
            )
            meta = {**common, "env": "multigrid", "task": args.task, "agents": n}
            desc = (
                f"MultiGrid {args.task}, {n} agents, {args.size}x{args.size} cells at "
                f"{args.tile_size} px, {args.policy} policy, episodes of {args.steps} steps."
            )
            jobs.append(Job(ids, spec, meta, desc))
    else:
        from envs.procgen import env_id as procgen_env_id

        for game in args.games:
            ids = tuple(
                procgen_dataset_id(
                    game, policy=args.policy, frame_size=args.frame_size, split=split
                )
                if c
                else ""
                for split, c in zip(SPLITS, counts, strict=True)
            )
            spec = GenerationSpec(
                procgen_env_id(game),
                {"frame_size": args.frame_size},
                policy=UniformRandom(args.repeat),
                max_steps=args.steps,
                compression=args.compression,
                imports=("envs",),
            )
            meta = {**common, "env": "procgen", "task": game, "agents": 1}
            desc = (
                f"Procgen {game} without backgrounds, {args.frame_size} px, random policy, "
                f"episodes of at most {args.steps} steps."
            )
            jobs.append(Job(ids, spec, meta, desc))
    return jobs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = resolve_root(args.root)
    jobs = build_jobs(args)
    counts = split_counts(args.episodes, args.splits)

    existing = [i for job in jobs for i in job.ids if i and dataset_exists(i, root)]
    if existing and not args.overwrite:
        print(
            f"error: these datasets already exist under {root}:\n  "
            + "\n  ".join(existing)
            + "\nPass --overwrite to replace them, or choose another --root.",
            file=sys.stderr,
        )
        return 1

    written = []
    start = time.perf_counter()
    for job in jobs:
        seed_ranges = split_seed_ranges(args.seed, counts)
        for split, dataset_id, seeds in zip(SPLITS, job.ids, seed_ranges, strict=True):
            if not dataset_id:
                continue
            result = generate_dataset(
                dataset_id,
                job.spec,
                seeds,
                root=root,
                workers=args.workers,
                metadata={**job.metadata, "split": split},
                description=job.description,
                overwrite=args.overwrite,
                progress=False if args.no_progress else dataset_id,
            )
            s = result.stats
            print(
                f"{dataset_id}: {s.episodes} episodes, {s.steps} steps, "
                f"{s.raw_bytes / 1e6:.0f} MB of frames stored as {s.stored_bytes / 1e6:.1f} MB, "
                f"{s.wall_s:.1f} s -> {result.path}",
                flush=True,
            )
            written.append(dataset_id)

    print(f"\nWrote {len(written)} datasets under {root} in {time.perf_counter() - start:.1f} s.")
    quoted = ", ".join(repr(i) for i in written)
    print(
        "Load them with:\n"
        "  from latentrl.data.cache import FrameCache\n"
        f"  cache = FrameCache.load([{quoted}], root={str(root)!r})\n"
        "or with Minari (frames are channel-first (T+1, c, h, w) there):\n"
        f'  MINARI_DATASETS_PATH={root} python -c "import minari; '
        f'print(minari.load_dataset({written[0]!r}))"'
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
