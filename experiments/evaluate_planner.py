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
from latentrl.config import add_config_args, from_dict, override
from latentrl.controller import LatentController, train_controller
from latentrl.data.codes import CodeCache
from latentrl.data.recipes import DatasetSpec
from latentrl.decoder import ActionDecoder
from latentrl.models import LatentActionModel
from latentrl.runs import read_json
from latentrl.stages import load_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a bc_from_video output folder (has results.json)")
    parser.add_argument("--episodes", type=int, default=100, help="episodes (default: 100)")
    add_config_args(parser, PlannerConfig, "planner", prefix="planner")
    args = vars(parser.parse_args())
    torch.set_num_threads(1)
    run: Path = args["run"]
    if not (run / "results.json").is_file() or not (run / "decoder_flam").is_dir():
        sys.exit(
            f"error: {run} is not a finished bc_from_video.py run with FLAM (it needs "
            "results.json and decoder_flam/): pass a folder under RUNS/bc_from_video/"
        )
    if args["episodes"] < 1:
        sys.exit(f"error: --episodes {args['episodes']}: evaluate at least one episode")
    results = read_json(run / "results.json")
    tokenizer_run = Path(results["tokenizer_run"])
    data = from_dict(DatasetSpec, read_json(tokenizer_run / "data.json"))
    config = override(PlannerConfig(), args, prefix="planner")
    try:
        model = LatentActionModel.load(Path(results["model_runs"]["flam"]) / "model")
        decoder = ActionDecoder.load(run / "decoder_flam")
        train_codes = CodeCache.load(tokenizer_run / "codes" / "train.safetensors")
        if (run / "controller_flam").is_dir():
            controller = LatentController.load(run / "controller_flam")
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
            load_tokenizer(tokenizer_run),
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
