"""Stage 1: train the frame tokenizer (IMPALA CNN + FSQ + decoder) and encode the datasets.

    python experiments/train_tokenizer.py --preset tiny
    python experiments/train_tokenizer.py --preset paper-multigrid --device cuda
    python experiments/train_tokenizer.py --resume runs/<run>      # continue a stopped run
    python experiments/train_tokenizer.py --video my_clips         # videos from import_videos.py

Generates the preset's datasets if they are missing (under --root), trains on the train split,
reports reconstruction PSNR on every split and writes every split's code indices to
``<run>/codes/<split>.safetensors`` so that stage 2 never touches pixels.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from latentrl.config import add_config_args, override
from latentrl.data.recipes import DatasetSpec, video_family
from latentrl.presets import add_run_args, get_preset
from latentrl.stages import train_tokenizer_stage
from latentrl.tokenizer import TokenizerConfig
from latentrl.train import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    shown = add_run_args(parser)
    parser.add_argument(
        "--video",
        default=None,
        metavar="NAME",
        help="train on the videos imported as NAME (experiments/import_videos.py); sets the "
        "dataset and the tokenizer's --frame-size",
    )
    add_config_args(
        parser, DatasetSpec, "dataset (prefixed --data-)", prefix="data", shown=shown.data
    )
    add_config_args(parser, TokenizerConfig, "tokenizer", shown=shown.tokenizer)
    add_config_args(parser, TrainConfig, "training", shown=shown.tokenizer_train)
    args = vars(parser.parse_args())
    preset = get_preset(args["preset"])
    data, tokenizer = override(preset.data, args, prefix="data"), override(preset.tokenizer, args)
    if args["video"] is not None:
        data = video_family(args["video"], args["root"])
        tokenizer = dataclasses.replace(tokenizer, frame_size=data.frame_size)
    run = train_tokenizer_stage(
        data,
        tokenizer,
        override(preset.tokenizer_train, args),
        root=args["root"],
        runs=args["runs"],
        workers=args["workers"],
        resume=args["resume"],
    )
    print(f"\ntokenizer run: {run.path}")
    print(json.dumps({k: v for k, v in run.results().items() if k != "datasets"}, indent=2))


if __name__ == "__main__":
    main()
