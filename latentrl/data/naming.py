"""Dataset ids and the train/validation/test split convention.

Ids follow the FLAM paper's convention and Minari's ``namespace/name-vN`` syntax; the Minari
*version* number is the split:

    ============  =======  ==============================================================
    split         version  example
    ============  =======  ==============================================================
    ``train``     ``v0``   ``multigrid/empty-agent_4-v0``
    ``val``       ``v1``   ``multigrid/empty-agent_4-v1``
    ``test``      ``v2``   ``multigrid/empty-agent_4-v2``
    ============  =======  ==============================================================

Name fields, joined by ``-`` (inside a field ``_`` separates a key from its value):

* MultiGrid: ``{task}-agent_{N}``, then ``-{policy}`` unless the policy is ``random`` (random
  actions held for k > 1 steps add ``-repeat_{k}``), then
  ``-size_{cells}`` unless the grid is the paper's 32x32, then ``-tile_{px}`` unless cells are
  the default 4 px. E.g. ``multigrid/goal-agent_4-expert-v0``,
  ``multigrid/empty-agent_2-size_8-v1``.
* Imported videos (``experiments/import_videos.py``): ``video/{name}``, e.g. ``video/my_clips-v2``.
* Procgen: ``{game}``, then ``-{policy}`` unless ``random``, then ``-px_{S}`` unless frames are
  procgen's native 64x64. E.g. ``procgen/coinrun-v0``.

Policy names with ``-`` (``noisy-expert``) are written with ``_`` (``noisy_expert``) so that ``-``
always separates fields. The splits of one dataset family use disjoint episode seeds: with
``--seed s`` and counts ``(n_train, n_val, n_test)``, train uses seeds ``s .. s+n_train-1``,
validation the next ``n_val``, test the next ``n_test`` (see :func:`split_seed_ranges`).
Everything not in the id (seeds, policy parameters, frame size, ...) is in the dataset's
metadata under the key ``"latentrl"``.
"""

from __future__ import annotations

from collections.abc import Sequence

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""Split names, in version order: ``SPLITS[v]`` is stored as Minari version ``v``."""

DEFAULT_GRID_SIZE = 32
DEFAULT_TILE_SIZE = 4
PROCGEN_NATIVE_SIZE = 64


def split_version(split: str) -> int:
    """Minari version number that stores ``split`` (``train`` -> 0, ``val`` -> 1, ``test`` -> 2)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return SPLITS.index(split)


def split_of(dataset_id: str) -> str:
    """The split a dataset id names by its version suffix (``...-v1`` -> ``val``)."""
    head, sep, version = dataset_id.rpartition("-v")
    if not sep or not head or not version.isdigit() or int(version) >= len(SPLITS):
        raise ValueError(
            f"dataset id {dataset_id!r} does not end in -v0/-v1/-v2 (train/val/test); "
            "build ids with latentrl.data.naming"
        )
    return SPLITS[int(version)]


def _policy_field(policy: str, repeat: int = 1) -> str:
    # Held random actions make different videos (and different latent action statistics), so
    # the hold length is part of the name; the paper's default (a new action each step) is not.
    if policy == "random":
        return "" if repeat == 1 else f"-repeat_{repeat}"
    return "-" + policy.replace("-", "_")


def multigrid_dataset_id(
    task: str,
    agents: int,
    *,
    policy: str = "random",
    size: int = DEFAULT_GRID_SIZE,
    tile_size: int = DEFAULT_TILE_SIZE,
    split: str = "train",
    repeat: int = 1,
) -> str:
    """Id of a MultiGrid dataset, e.g. ``multigrid/empty-agent_4-v0`` (see module docstring)."""
    name = f"{task}-agent_{agents}{_policy_field(policy, repeat)}"
    if size != DEFAULT_GRID_SIZE:
        name += f"-size_{size}"
    if tile_size != DEFAULT_TILE_SIZE:
        name += f"-tile_{tile_size}"
    return f"multigrid/{name}-v{split_version(split)}"


def procgen_dataset_id(
    game: str,
    *,
    policy: str = "random",
    frame_size: int = PROCGEN_NATIVE_SIZE,
    split: str = "train",
    repeat: int = 1,
) -> str:
    """Id of a Procgen dataset, e.g. ``procgen/coinrun-v0`` (see module docstring)."""
    name = f"{game.lower()}{_policy_field(policy, repeat)}"
    if frame_size != PROCGEN_NATIVE_SIZE:
        name += f"-px_{frame_size}"
    return f"procgen/{name}-v{split_version(split)}"


def video_dataset_id(name: str, *, split: str = "train") -> str:
    """Id of an imported video dataset, e.g. ``video/my_clips-v0`` (see module docstring)."""
    if not name or not all(ch.isalnum() or ch in "_-" for ch in name) or "-v" in name:
        raise ValueError(
            f"video dataset name {name!r}: use letters, digits, '_' and '-' (and no '-v', "
            "which would read as a version), e.g. my_clips"
        )
    return f"video/{name}-v{split_version(split)}"


def split_counts(total: int, proportions: Sequence[float]) -> list[int]:
    """Split ``total`` episodes into integer counts proportional to ``proportions``.

    Largest-remainder rounding, so the counts always sum to ``total``; ties go to the earlier
    split. ``proportions`` may be fractions (0.8 0.1 0.1) or counts (800 100 100): only their
    ratios matter.
    """
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if not proportions or any(p < 0 for p in proportions) or sum(proportions) <= 0:
        raise ValueError(
            f"split proportions must be >= 0 with a positive sum, got {list(proportions)}"
        )
    norm = sum(proportions)
    exact = [total * p / norm for p in proportions]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def split_seed_ranges(base_seed: int, counts: Sequence[int]) -> list[range]:
    """Disjoint, consecutive episode-seed ranges, one per split (see module docstring)."""
    ranges, start = [], base_seed
    for n in counts:
        ranges.append(range(start, start + n))
        start += n
    return ranges
