"""Named presets: data, tokenizer and model settings that belong together.

- ``tiny``: CPU minutes. MultiGrid ``Empty`` with 4 agents on 8x8 cells at 4 px (32x32 frames),
  random agents drawing a new action every step (``repeat=1``: with held actions the previous
  move, carried in the recurrent slot state, predicts the next one and the latent code only has
  to encode changes); one token per cell. FLAM with positional slots seeded on the first frame's
  distinct tokens, K = 12, 2 slot-attention iterations per frame and a 2D action code (FSQ
  [3, 3], 9 codes, batch-normalised inputs; 1200 steps
  (docs/research/flam_seed_robustness.md, docs/research/flam_library_tuning.md). The monolithic
  LAM and the LAPO-style model get a scene latent wide enough for a joint action (FSQ [5] x 8,
  batch-normalised), lr 2e-3 and their own steps (docs/research/strong_lam.md).
- ``small``: the tiny recipe on 16x16 cells at 4 px (64 px frames, 256 tokens), 1 to 16 agents
  (``--data-agents``), K = agents + 8; LAM and WM merge 2 x 2 cells into one state token.
- ``paper-multigrid``: FLAM Table 4 (GPU): 32x32 cells at 128 px, d_model 256, 2 blocks,
  action FSQ [2, 2], sub-trajectories of 10 frames with 5 prediction steps, sub-tokens [32, 32];
  K = 8 instead of Table 4's 4 (spare slots for walls and floor, so each agent seeds its own).
- ``paper-procgen``: Table 4 for Procgen: K = 32, action FSQ [2, 2, 2, 2]; frames at 64 px
  native here (the paper resizes to 224, available with ``--frame-size 224``).
Every value can be overridden from the command line of the scripts.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from latentrl.config import opt, preset_name
from latentrl.data.recipes import DatasetSpec
from latentrl.models.config import ModelConfig
from latentrl.tokenizer import TokenizerConfig
from latentrl.train import TrainConfig


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """What stage 2 trains on beyond the model itself."""

    window: int = opt(4, "frames per training window (paper: sub-trajectory length 10)")
    probe_windows: int = opt(256, "held-out windows for the latent-action probe")


@dataclasses.dataclass(frozen=True)
class Preset:
    data: DatasetSpec
    tokenizer: TokenizerConfig
    tokenizer_train: TrainConfig
    model: ModelConfig
    train: TrainConfig
    stage: StageConfig
    # Steps per model where they differ from ``train.steps``: the monolithic models attend over
    # every token rather than K slots, so equal wall-time budgets mean fewer steps for them.
    steps_by_model: tuple[tuple[str, int], ...] = ()
    # Learning rates per model where they differ from ``train.lr``.
    lr_by_model: tuple[tuple[str, float], ...] = ()
    # Model settings per kind over ``model`` (field name, value): the monolithic models need a
    # scene latent wide enough for a joint action, FLAM a small per-slot code.
    model_by_kind: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    def train_for(self, model: str) -> TrainConfig:
        """The training config of ``model`` under this preset."""
        steps = dict(self.steps_by_model).get(model, self.train.steps)
        lr = dict(self.lr_by_model).get(model, self.train.lr)
        return dataclasses.replace(self.train, steps=steps, lr=lr)

    def model_for(self, kind: str) -> ModelConfig:
        """The model config of ``kind`` under this preset (``model`` plus its own settings)."""
        changes = dict(dict(self.model_by_kind).get(kind, ()))
        return dataclasses.replace(self.model, model=kind, **changes)  # type: ignore[arg-type]


# Table 4 shares its optimisation settings between the simulation datasets.
PAPER_TOKENIZER_TRAIN = TrainConfig(
    steps=20000, batch_size=128, lr=1e-3, eval_every=2000, checkpoint_every=2000, media_every=5000
)
PAPER_TRAIN = TrainConfig(
    steps=50000,
    batch_size=64,
    lr=3e-4,
    warmup_steps=1000,
    eval_every=2500,
    checkpoint_every=2500,
    media_every=5000,
)
PAPER_STAGE = StageConfig(window=10, probe_windows=512)
# The monolithic models' scene latents: 8 FSQ values of 5 levels (5^8 codes, 18.6 bits), room
# for a joint action of 4 agents x 5 moves (9.3 bits) and more; FLAM's per-slot code is the
# small one. The LAM reads its latent as 4 pooled code positions of FSQ [5, 5] from change
# features that are exactly zero where nothing changed (``idm_delta``): the one-position LAM
# stayed on its no-latent plateau on some seeds (docs/research/strong_lam.md).
LAM_LATENT: tuple[tuple[str, Any], ...] = (
    ("action_levels", (5, 5)),
    ("action_positions", 4),
    ("action_norm", True),
    ("idm_delta", True),
)
# The LAPO-style model on LAPO's plain next-frame loss: with changed tokens weighted 10x its UNet
# found a latent-free optimum (an agent spread over every cell it may move to) and its inverse
# dynamics never started to carry the moves (docs/research/strong_lam.md, P7 vs P9).
LAPO_LATENT: tuple[tuple[str, Any], ...] = (
    ("action_levels", (5,) * 8),
    ("action_norm", True),
    ("changed_weight", 1.0),
)

# FLAM's per-slot FSQ [3, 3] inputs are whitened over the batch: with per-dimension batch norm
# alone the two dimensions could become one (a 2D code on a line, two moves per code) and a
# bound seed stayed at probe 0.68-0.70 (docs/research/flam_seed_robustness.md).
FLAM_LATENT: tuple[tuple[str, Any], ...] = (("action_whiten", True),)

PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        data=DatasetSpec(
            env="multigrid",
            task="empty",
            agents=4,
            size=8,
            tile_size=4,
            policy="random",
            repeat=1,
            episodes=1000,
            steps=48,
        ),
        # Patch encoder: a token sees only its own cell, so codes change only where an agent
        # moved; IMPALA's overlapping field changes the codes of neighbouring cells too
        # (docs/research/flam_library_tuning.md).
        tokenizer=TokenizerConfig(
            encoder="patch", frame_size=32, stage_channels=(64, 64), z_channels=32
        ),
        tokenizer_train=TrainConfig(
            steps=1000,
            batch_size=64,
            lr=3e-3,
            warmup_steps=50,
            eval_every=200,
            checkpoint_every=200,
            media_every=500,
        ),
        # Batch-normalised FSQ inputs: without them a seed could leave its codes on one value
        # for every slot (docs/research/flam_goal_action_norm.md).
        model=ModelConfig(num_slots=12, slot_iters=2, action_levels=(3, 3), action_norm=True),
        train=TrainConfig(
            steps=1200,
            batch_size=32,
            lr=1e-3,
            warmup_steps=100,
            eval_every=300,
            checkpoint_every=300,
            media_every=600,
        ),
        stage=StageConfig(window=4),
        steps_by_model=(("lam", 1000), ("lapo", 1300), ("oclam", 1000), ("wm", 1000)),
        lr_by_model=(("lam", 2e-3), ("lapo", 2e-3)),
        model_by_kind=(("flam", FLAM_LATENT), ("lam", LAM_LATENT), ("lapo", LAPO_LATENT)),
    ),
    "paper-multigrid": Preset(
        data=DatasetSpec(
            env="multigrid",
            task="empty",
            agents=4,
            size=32,
            tile_size=4,
            policy="random",
            repeat=1,
            episodes=1000,
            steps=64,
        ),
        tokenizer=TokenizerConfig(frame_size=128, stage_channels=(16, 32, 32), z_channels=128),
        tokenizer_train=PAPER_TOKENIZER_TRAIN,
        # K = 8 rather than Table 4's 4: four spare slots beside the 4 agents, so that walls and
        # floor have slots of their own and every agent can seed one (seeded slot init).
        model=ModelConfig(
            d_model=256, heads=8, blocks=2, num_slots=8, action_levels=(2, 2), pred_steps=5
        ),
        train=PAPER_TRAIN,
        stage=PAPER_STAGE,
        model_by_kind=(("lam", LAM_LATENT), ("lapo", LAPO_LATENT)),
    ),
    "paper-procgen": Preset(
        data=DatasetSpec(
            env="procgen",
            task="bigfish",
            frame_size=64,
            policy="random",
            repeat=1,
            episodes=1000,
            steps=256,
        ),
        tokenizer=TokenizerConfig(frame_size=64, stage_channels=(16, 32, 32), z_channels=128),
        tokenizer_train=PAPER_TOKENIZER_TRAIN,
        model=ModelConfig(
            d_model=256,
            heads=8,
            blocks=2,
            num_slots=32,
            num_agents=1,
            agent_actions=15,
            action_levels=(2, 2, 2, 2),
            pred_steps=5,
        ),
        train=PAPER_TRAIN,
        stage=PAPER_STAGE,
        model_by_kind=(("lam", LAM_LATENT), ("lapo", LAPO_LATENT)),
    ),
}


# The tiny recipe on a 16x16-cell room (64 px frames, 256 tokens). K = agents + 8:
# entity_sweep.slots_for keeps the 8 spare slots at other agent counts. The token-level models
# (LAM, WM) merge 2 x 2 cells into one state token (Genie/LAPO patchify): over 256 tokens their
# spatial attention and MLPs made a step 2.5x the merged one's (about 42 minutes for 1000 LAM
# steps on one core against 17; docs/research/small_preset.md).
_TINY = PRESETS["tiny"]
PRESETS["small"] = dataclasses.replace(
    _TINY,
    data=dataclasses.replace(_TINY.data, size=16),
    tokenizer=dataclasses.replace(_TINY.tokenizer, frame_size=64),
    model_by_kind=(
        ("flam", FLAM_LATENT),
        ("lam", (*LAM_LATENT, ("scene_patch", 2))),
        ("lapo", LAPO_LATENT),
        ("wm", (("scene_patch", 2),)),
    ),
)


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def add_run_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> Preset:
    """Flags every training script shares; returns the preset named on the command line, whose
    values the script's ``--help`` then shows as defaults."""
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
    parser.add_argument(
        "--workers", type=int, default=2, help="processes for dataset generation (if needed)"
    )
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        help="continue this run folder from its last checkpoint",
    )
    return get_preset(preset_name(argv, sorted(PRESETS), "tiny"))
