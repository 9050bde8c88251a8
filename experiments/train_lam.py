"""Stage 2: train a latent action model (FLAM, LAM, LAPO, OC+LAM or WM) on a tokenizer run's codes.

    python experiments/train_lam.py --preset tiny --model flam
    python experiments/train_lam.py --preset tiny --model lam --action-levels 5 5 5 5
    python experiments/train_lam.py --preset tiny --model lapo
    python experiments/train_lam.py --resume runs/<run>
    python experiments/train_lam.py --video my_clips --model flam   # videos from import_videos.py
    torchrun --nproc-per-node 2 experiments/train_lam.py --preset tiny --model flam   # DDP

Uses the newest finished tokenizer run on the preset's data (whatever its tokenizer settings)
unless --tokenizer is given, and trains one first if there is none. Logs losses, steps/s, the per-agent latent-action probe and
slot binding (eval/), and a rollout GIF to tensorboard; writes the model as safetensors + JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from latentrl.artifacts import TokenizerRun
from latentrl.config import add_config_args, override
from latentrl.data.recipes import DatasetSpec, video_family
from latentrl.distributed import teardown
from latentrl.models import ModelConfig
from latentrl.presets import StageConfig, add_run_args, get_preset
from latentrl.stages import train_model_stage, train_tokenizer_stage
from latentrl.train import TrainConfig

FILLED_FROM_TOKENIZER = frozenset(
    {"codebook_size", "code_dim", "grid", "num_agents", "agent_actions"}
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    shown = add_run_args(parser)
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        help="tokenizer run folder (default: newest on this data)",
    )
    parser.add_argument(
        "--tokenizer-steps",
        type=int,
        default=None,
        help="steps of the tokenizer trained first when there is none on this data "
        "(default: the preset's)",
    )
    parser.add_argument(
        "--video",
        default=None,
        metavar="NAME",
        help="use the newest tokenizer run on the videos imported as NAME "
        "(experiments/import_videos.py), training one first if there is none",
    )
    add_config_args(
        parser, DatasetSpec, "dataset (prefixed --data-)", prefix="data", shown=shown.data
    )
    add_config_args(parser, ModelConfig, "model", exclude=FILLED_FROM_TOKENIZER, shown=shown.model)
    add_config_args(parser, TrainConfig, "training", shown=shown.train_for(shown.model.model))
    add_config_args(parser, StageConfig, "windows and probe", shown=shown.stage)
    args = vars(parser.parse_args())
    preset = get_preset(args["preset"])
    tokenizer = None if args["tokenizer"] is None else TokenizerRun(args["tokenizer"])
    if tokenizer is None and args["resume"] is None:
        data = override(preset.data, args, prefix="data")
        tok_cfg = preset.tokenizer
        if args["video"] is not None:
            data = video_family(args["video"], args["root"])
            tok_cfg = dataclasses.replace(tok_cfg, frame_size=data.frame_size)
        tokenizer = TokenizerRun.newest_on(args["runs"], data)
        if tokenizer is None:
            print("no tokenizer run on this data yet: training one first")
            # The tokenizer runs on the device and threads asked for the model (when given).
            given = {k: args[k] for k in ("device", "threads") if args.get(k) is not None}
            tok_train = dataclasses.replace(preset.tokenizer_train, **given)
            if args["tokenizer_steps"] is not None:
                tok_train = dataclasses.replace(tok_train, steps=args["tokenizer_steps"])
            tokenizer = train_tokenizer_stage(
                data,
                tok_cfg,
                tok_train,
                root=args["root"],
                runs=args["runs"],
                workers=args["workers"],
            )
    kind = args["model"] or preset.model.model
    try:
        run = train_model_stage(
            override(preset.model_for(kind), args),
            override(preset.train_for(kind), args),
            override(preset.stage, args),
            tokenizer_run=tokenizer or TokenizerRun(Path()),
            runs=args["runs"],
            resume=args["resume"],
        )
    finally:
        teardown()
    if os.environ.get("RANK", "0") == "0" and run.finished:
        results = run.results()
        print(f"\nrun: {run.path}")
        print(json.dumps({k: v for k, v in results.items() if k != "curve"}, indent=2))


if __name__ == "__main__":
    main()
