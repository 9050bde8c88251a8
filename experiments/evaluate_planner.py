"""Evaluate the FLAM planner alone on the models of a finished bc_from_video.py run.

    python experiments/evaluate_planner.py runs/bc_from_video/<run>
    python experiments/evaluate_planner.py runs/bc_from_video/<run> --planner-score pixels
    python experiments/evaluate_planner.py runs/bc_from_video/<run> --planner-search per-slot
    python experiments/evaluate_planner.py runs/bc_from_video/<run> --planner-search cem \
        --planner-horizon 3

Loads the run's FLAM, tokenizer, FLAM latent-action decoder and controller (nothing is trained,
except the controller of a run from before controllers existed: it is trained on the run's
labelled subset, as bc_from_video.py would), plans in the run's Goal env on the same seeded
episodes as bc_from_video.py, and prints success rate, mean return, episode length and seconds
per env step. Use it to compare planner settings on one set of trained models.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from agents.pipeline import PipelineConfig, controller_config, decoder_config, evaluate_planner
from agents.planner import PlannerConfig
from latentrl.artifacts import PipelineRun
from latentrl.config import add_config_args, override
from latentrl.controller import LatentController, train_controller
from latentrl.decoder import ActionDecoder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a finished bc_from_video output folder")
    parser.add_argument("--episodes", type=int, default=100, help="episodes (default: 100)")
    add_config_args(parser, PlannerConfig, "planner", prefix="planner")
    args = vars(parser.parse_args())
    torch.set_num_threads(1)
    try:
        run = PipelineRun.open_with(args["run"], "flam")
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    if args["episodes"] < 1:
        sys.exit(f"error: --episodes {args['episodes']}: evaluate at least one episode")
    results = run.results()
    tokenizer_run = run.tokenizer_run
    data = tokenizer_run.data()
    config = override(PlannerConfig(), args, prefix="planner")
    try:
        model = run.model_run("flam").load_model()
        decoder = ActionDecoder.load(run.decoder_dir("flam"))
        train_codes = tokenizer_run.codes("train")
        if run.controller_dir("flam").is_dir():
            controller = LatentController.load(run.controller_dir("flam"))
        else:
            stored = {
                k: v
                for k, v in results.get("config", {}).items()
                if k in ("label_fraction", "label_count", "seed")
            }
            cfg = PipelineConfig(**stored)
            controller, _ = train_controller(
                model, decoder, train_codes, decoder_config(cfg), controller_config(cfg)
            )
        figures = evaluate_planner(
            model,
            tokenizer_run.load_tokenizer(),
            decoder,
            train_codes,
            data,
            config,
            args["episodes"],
            seed=int(results.get("config", {}).get("seed", 0)),
            controller=controller,
        )
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(json.dumps({k: v for k, v in figures.items() if k != "planner"}, indent=1))
    print("planner:", json.dumps(figures["planner"]))


if __name__ == "__main__":
    main()
