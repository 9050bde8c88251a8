"""From action-free video to a policy: FLAM vs the monolithic LAM, evaluated in the real env.

    python experiments/bc_from_video.py                       # CPU default: Goal 8x8, 4 agents
    python experiments/bc_from_video.py --agents 2 --episodes 50
    python experiments/bc_from_video.py --preset paper        # GPU scale: 32x32 room, 128 px

Builds (or reuses, when finished with the same settings) random-play video for the world models
and expert video to imitate, a tokenizer, FLAM and LAM; trains each model's latent-action
decoder on a small labelled subset of the random-play transitions (--label-fraction, default
2%); labels the expert video with the decoded actions; clones a policy on them; plans with
FLAM toward the goal image; and evaluates every agent on the same seeded episodes. Prints a table
and writes results.json and table.md under RUNS/bc_from_video/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from agents.pipeline import PipelineConfig, results_table, run_pipeline
from agents.planner import PlannerConfig
from latentrl.artifacts import results_path
from latentrl.config import add_config_args, override
from latentrl.data.errors import DatasetExistsError


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="datasets root (default: $MINARI_DATASETS_PATH, else ~/.minari/datasets)",
    )
    parser.add_argument(
        "--runs", type=Path, default=Path("runs"), help="run folders (default: runs)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="processes for dataset generation (if needed)"
    )
    add_config_args(parser, PipelineConfig, "pipeline", exclude=frozenset({"planner"}))
    add_config_args(parser, PlannerConfig, "planner", prefix="planner")
    args = vars(parser.parse_args())
    try:
        cfg = override(PipelineConfig(), args)
        cfg = dataclasses.replace(cfg, planner=override(cfg.planner, args, prefix="planner"))
        summary = run_pipeline(
            cfg,
            runs=args["runs"],
            root=None if args["root"] is None else str(args["root"]),
            workers=args["workers"],
        )
    except (FileNotFoundError, ValueError, DatasetExistsError) as e:
        sys.exit(f"error: {e}")
    print()
    print(results_table(summary))
    print(f"\nresults: {results_path(Path(summary['out']))}")
    print(json.dumps(summary["stage_seconds"], indent=1))


if __name__ == "__main__":
    main()
