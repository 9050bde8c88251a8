"""Sane bounds of the sizing fields of configs read back from files.

A config in a run folder fixes how much memory the model takes; an absurd value (a damaged or
hand-edited file) would make the loader try to allocate hundreds of GB before failing. The
bounds are generous (well beyond the paper's settings) and checked by
:func:`latentrl.config.from_dict` before anything is built. Keyed by config class name, so
this module imports nothing of ours.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Limit:
    """``lo <= value <= hi`` (each element for tuples, whose length and product are bounded)."""

    lo: int
    hi: int
    max_len: int = 64
    max_product: int | None = None


LIMITS: dict[str, dict[str, Limit]] = {
    "ModelConfig": {
        "d_model": Limit(1, 8192),
        "heads": Limit(1, 256),
        "blocks": Limit(1, 128),
        "num_slots": Limit(1, 1024),
        "slot_iters_first": Limit(0, 100),
        "slot_iters": Limit(0, 100),
        "action_levels": Limit(2, 1024, max_len=32, max_product=2**20),
        "action_dim": Limit(1, 4096),
        "subtokens": Limit(1, 2**20, max_len=8, max_product=2**24),
        "pred_steps": Limit(1, 1024),
        "num_agents": Limit(1, 1024),
        "agent_actions": Limit(1, 2**16),
        "codebook_size": Limit(1, 2**24),
        "code_dim": Limit(1, 8192),
        "grid": Limit(1, 512),
    },
    "TokenizerConfig": {
        "frame_size": Limit(1, 4096),
        "channels": Limit(1, 64),
        "stage_channels": Limit(1, 8192, max_len=12),
        "z_channels": Limit(1, 8192),
        "fsq_levels": Limit(2, 1024, max_len=32, max_product=2**24),
    },
    "TrainConfig": {
        "steps": Limit(0, 10**9),
        "batch_size": Limit(1, 2**20),
        "warmup_steps": Limit(0, 10**9),
        "log_every": Limit(1, 10**9),
        "eval_every": Limit(1, 10**9),
        "checkpoint_every": Limit(1, 10**9),
        "media_every": Limit(0, 10**9),
        "threads": Limit(0, 4096),
    },
    "StageConfig": {"window": Limit(2, 10**4), "probe_windows": Limit(1, 10**7)},
    "DatasetSpec": {
        "agents": Limit(1, 1024),
        "size": Limit(3, 4096),
        "tile_size": Limit(1, 1024),
        "frame_size": Limit(1, 4096),
        "episodes": Limit(1, 10**9),
        "steps": Limit(1, 10**7),
    },
}


JOINT_LIMITS: dict[str, list[tuple[tuple[str, ...], int, str]]] = {
    # (fields, bound on the product of their values, what it stands for): per-field bounds
    # alone would still allow d_model 8192 with 128 blocks (hundreds of GB of weights).
    "ModelConfig": [
        (("d_model", "d_model", "blocks"), 2**31, "d_model^2 * blocks (weights per block)"),
        (("codebook_size", "d_model"), 2**31, "codebook_size * d_model (output layer)"),
        (("grid", "grid", "d_model"), 2**28, "grid^2 * d_model (token table)"),
    ],
    "TokenizerConfig": [
        (("frame_size", "frame_size", "channels"), 2**28, "frame_size^2 * channels"),
    ],
}


def limit_problems(cls_name: str, values: Mapping[str, Any]) -> list[str]:
    """One line per field of ``values`` outside its :data:`LIMITS` (type checks come first)."""
    problems = []
    for name, limit in LIMITS.get(cls_name, {}).items():
        if name not in values:
            continue
        value = values[name]
        items = list(value) if isinstance(value, tuple | list) else [value]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            continue  # a type problem, reported by the type check
        bad = [v for v in items if not limit.lo <= v <= limit.hi]
        if bad:
            problems.append(f"{name}: expected values in [{limit.lo}, {limit.hi}], found {value!r}")
        elif isinstance(value, tuple | list):
            if not 1 <= len(items) <= limit.max_len:
                problems.append(f"{name}: expected 1 to {limit.max_len} values, found {len(items)}")
            elif limit.max_product is not None and math.prod(items) > limit.max_product:
                problems.append(
                    f"{name}: expected a product <= {limit.max_product}, found "
                    f"{math.prod(items)} ({value!r})"
                )
    if problems:
        return problems
    for fields, bound, meaning in JOINT_LIMITS.get(cls_name, []):
        got = [values.get(f) for f in fields]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in got):
            continue  # absent (the class default) or a type problem reported above
        product = math.prod(got)  # type: ignore[arg-type]
        if product > bound:
            problems.append(f"{meaning}: expected <= {bound}, found {product}")
    return problems
