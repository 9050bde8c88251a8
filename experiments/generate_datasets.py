"""Generate the action-free video datasets (MultiGrid, Procgen) as lossless Minari datasets.

One dataset per (agent count | game) and split, named by the convention of
``latentrl.data.naming`` (``multigrid/empty-agent_4-v0`` train, ``-v1`` validation, ``-v2``
test). Each family is a ``latentrl.data.recipes.DatasetSpec`` written by ``generate_family``;
other scripts get the same datasets with ``ensure_datasets``. Examples::

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
from pathlib import Path

from latentrl.data.errors import DatasetExistsError
from latentrl.data.generate import GeneratedDataset
from latentrl.data.minari_io import dataset_exists, resolve_root
from latentrl.data.naming import DEFAULT_GRID_SIZE, DEFAULT_TILE_SIZE, PROCGEN_NATIVE_SIZE
from latentrl.data.recipes import DatasetSpec, generate_family


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Load one split with latentrl.data.cache.FrameCache.load(ID, root=ROOT), e.g. "
        "ID = 'multigrid/empty-agent_4-v0' (train), or with Minari: MINARI_DATASETS_PATH=ROOT "
        "python -c \"import minari; minari.load_dataset('multigrid/empty-agent_4-v0')\" (frames "
        "are channel-first there). Other scripts generate the same datasets with "
        "latentrl.data.recipes.ensure_datasets.",
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
        choices=("random", "expert", "noisy-expert", "mixed"),
        default="random",
        help="random actions, scripted goal-reaching expert (MultiGrid goal "
        "task), expert with random actions at rate --eps, or mixed: each episode the "
        "expert's with probability --expert-share, else random play",
    )
    pol.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="random policy (and mixed's random episodes): steps each random action is held",
    )
    pol.add_argument(
        "--eps",
        type=float,
        default=0.1,
        help="noisy-expert: per-agent probability of a random action per step",
    )
    pol.add_argument(
        "--expert-share",
        type=float,
        default=0.5,
        help="mixed: probability that an episode is the expert's",
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
        build_specs(args)  # DatasetSpec checks the rest (splits, sizes, ...)
    except ValueError as e:
        parser.error(str(e))
    return args


def build_specs(args: argparse.Namespace) -> list[DatasetSpec]:
    """One dataset family per agent count (MultiGrid) or game (Procgen)."""
    common = {
        "env": args.env,
        "policy": args.policy,
        "repeat": args.repeat,
        "eps": args.eps,
        "expert_share": args.expert_share,
        "episodes": args.episodes,
        "steps": args.steps,
        "splits": tuple(args.splits),
        "seed": args.seed,
    }
    if args.env == "multigrid":
        return [
            DatasetSpec(
                task=args.task, agents=n, size=args.size, tile_size=args.tile_size, **common
            )
            for n in args.agents
        ]
    return [DatasetSpec(task=game, frame_size=args.frame_size, **common) for game in args.games]


def describe(result: GeneratedDataset) -> str:
    s = result.stats
    return (
        f"{result.dataset_id}: {s.episodes} episodes, {s.steps} steps, "
        f"{s.raw_bytes / 1e6:.0f} MB of frames stored as {s.stored_bytes / 1e6:.1f} MB, "
        f"{s.wall_s:.1f} s -> {result.path}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = resolve_root(args.root)
    specs = build_specs(args)

    existing = [i for spec in specs for i in spec.dataset_ids().values() if dataset_exists(i, root)]
    if existing and not args.overwrite:
        print(
            f"error: these datasets already exist under {root}:\n  "
            + "\n  ".join(existing)
            + "\nPass --overwrite to replace them, or choose another --root.",
            file=sys.stderr,
        )
        return 1

    written: list[str] = []
    start = time.perf_counter()
    for spec in specs:
        try:
            results = generate_family(
                spec,
                root,
                workers=args.workers,
                progress=not args.no_progress,
                overwrite=args.overwrite,
                compression=args.compression,
            )
        except DatasetExistsError as e:  # written by someone else since the check above
            print(f"error: {e}", file=sys.stderr)
            return 1
        for result in results:
            print(describe(result), flush=True)
            written.append(result.dataset_id)

    print(f"\nWrote {len(written)} datasets under {root} in {time.perf_counter() - start:.1f} s.")
    ids = specs[0].dataset_ids()
    example = ids.get("train", next(iter(ids.values())))
    print(
        "Load one split of one family at a time (-v0 train, -v1 val, -v2 test), e.g.:\n"
        "  from latentrl.data.cache import FrameCache\n"
        f"  cache = FrameCache.load({example!r}, root={str(root)!r})\n"
        "or with Minari (frames are channel-first (T+1, c, h, w) there):\n"
        f'  MINARI_DATASETS_PATH={root} python -c "import minari; '
        f'print(minari.load_dataset({example!r}))"'
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
