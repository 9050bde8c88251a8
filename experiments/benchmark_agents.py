"""Benchmark policy success against the monolithic LAM over the number of agents.

    python experiments/benchmark_agents.py                    # agents 1 2 4 8, seed 0, CPU
    python experiments/benchmark_agents.py --agents 1 2 4 --seeds 0 1
    python experiments/benchmark_agents.py --preset paper     # GPU scale

Runs experiments/bc_from_video.py's protocol for every (agent count, seed): expert, random,
true-action BC, FLAM-BC, LAM-BC (joint-action latent), LAPO-style BC, LAM-BC with FLAM's
per-action codebook, LAM-BC with equal total capacity, and the FLAM planner (--methods picks a
subset), all evaluated on the same seeded episodes. Writes one table and
one plot (success rate versus number of agents) to --out; finished cells are not recomputed.
Rooms grow from 8x8 to 16x16 cells above 4 agents (MultiGrid's limit for 8x8).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from agents.benchmark import BENCHMARK_METHODS, benchmark_table, run_benchmark
from agents.pipeline import PipelineConfig
from agents.planner import PlannerConfig
from latentrl.config import add_config_args, override
from latentrl.data.errors import DatasetExistsError


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 2, 4, 8], help="agent counts")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds per agent count")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/benchmark_agents"),
        help="where state.json, results.json, table.md and the plot go",
    )
    parser.add_argument("--root", type=Path, default=None, help="datasets root")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="run folders")
    parser.add_argument("--workers", type=int, default=2, help="dataset generation processes")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(BENCHMARK_METHODS),
        choices=BENCHMARK_METHODS,
        help="methods run in every cell (default: all; the main job's default set is expert random "
        "bc_true_actions bc_flam bc_lam planner_flam)",
    )
    add_config_args(
        parser,
        PipelineConfig,
        "pipeline (per cell)",
        exclude=frozenset(
            {"agents", "seed", "methods", "flam_run", "lam_run", "lapo_run", "planner"}
        ),
    )
    add_config_args(parser, PlannerConfig, "planner", prefix="planner")
    args = vars(parser.parse_args())
    try:
        base = dataclasses.replace(override(PipelineConfig(), args), methods=tuple(args["methods"]))
        base = dataclasses.replace(base, planner=override(base.planner, args, prefix="planner"))
        summary = run_benchmark(
            base,
            args["agents"],
            args["seeds"],
            out=args["out"],
            runs=args["runs"],
            root=None if args["root"] is None else str(args["root"]),
            workers=args["workers"],
        )
    except (FileNotFoundError, ValueError, DatasetExistsError) as e:
        sys.exit(f"error: {e}")
    print()
    print(benchmark_table(summary))
    print(f"\n{args['out']}/table.md, {args['out']}/success_vs_agents.png")


if __name__ == "__main__":
    main()
