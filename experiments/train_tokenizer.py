"""Stage 1: train the frame tokenizer (IMPALA CNN + FSQ + decoder) and encode the datasets.

    python experiments/train_tokenizer.py --preset tiny
    python experiments/train_tokenizer.py --preset paper-multigrid --device cuda
    python experiments/train_tokenizer.py --resume runs/<run>      # continue a stopped run

Generates the preset's datasets if they are missing (under --root), trains on the train split,
reports reconstruction PSNR on every split and writes every split's code indices to
``<run>/codes/<split>.safetensors`` so that stage 2 never touches pixels.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from latentrl.config import add_config_args, override, preset_name
from latentrl.data.recipes import DatasetSpec
from latentrl.presets import PRESETS, get_preset
from latentrl.runs import read_json
from latentrl.stages import train_tokenizer_stage
from latentrl.tokenizer import TokenizerConfig
from latentrl.train import TrainConfig


def main() -> None:
    shown = get_preset(preset_name(None, sorted(PRESETS), "tiny"))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--preset", default="tiny", choices=sorted(PRESETS), help="named settings (default: tiny)"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="datasets root (default: $MINARI_DATASETS_PATH, else ~/.minari/datasets, as "
        "generate_datasets.py)",
    )
    parser.add_argument(
        "--runs", type=Path, default=Path("runs"), help="where run folders go (default: runs)"
    )
    parser.add_argument("--workers", type=int, default=2, help="processes for dataset generation")
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        help="continue this run folder from its last checkpoint",
    )
    add_config_args(
        parser, DatasetSpec, "dataset (prefixed --data-)", prefix="data", shown=shown.data
    )
    add_config_args(parser, TokenizerConfig, "tokenizer", shown=shown.tokenizer)
    add_config_args(parser, TrainConfig, "training", shown=shown.tokenizer_train)
    args = vars(parser.parse_args())
    preset = get_preset(args["preset"])
    run = train_tokenizer_stage(
        override(preset.data, args, prefix="data"),
        override(preset.tokenizer, args),
        override(preset.tokenizer_train, args),
        root=args["root"],
        runs=args["runs"],
        workers=args["workers"],
        resume=args["resume"],
    )
    print(f"\ntokenizer run: {run}")
    print(
        json.dumps(
            {k: v for k, v in read_json(run / "results.json").items() if k != "datasets"}, indent=2
        )
    )


if __name__ == "__main__":
    main()
