"""Dataset recipes: one :class:`DatasetSpec` -> the train/val/test Minari datasets of a family.

A *family* is every split of one env configuration (one MultiGrid agent count, or one Procgen
game) recorded with one behaviour policy. Its ids follow :mod:`latentrl.data.naming`
(``multigrid/empty-agent_4-v0`` train, ``-v1`` val, ``-v2`` test) and its splits use disjoint,
consecutive episode seeds (:func:`~latentrl.data.naming.split_seed_ranges`).

Two entry points:

* :func:`generate_family` is what ``experiments/generate_datasets.py`` does for one family:
  refuse if any split already exists (unless ``overwrite``), then write every split.
* :func:`ensure_datasets` is for scripts that *need* a dataset (tokenizer, latent action model,
  behaviour cloning): it generates the missing splits and reuses the existing ones, but only if
  their stored metadata says they were generated with the same settings.

:class:`DatasetSpec` fields carry their ``--help`` text, so a script exposes them with
``latentrl.config.add_config_args(parser, DatasetSpec)`` and ``override``.

The environments live in the top-level ``envs`` package, which ``latentrl`` does not import at
module level: ``import latentrl.data.recipes`` stays free of ``envs`` (and of minigrid/procgen).
Only :meth:`DatasetSpec.generation_spec` imports it, because generating needs the simulators
anyway (the workers import ``envs`` through ``GenerationSpec.imports``).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal

from latentrl.config import opt
from latentrl.data.episode import Compression
from latentrl.data.errors import DatasetExistsError
from latentrl.data.generate import GeneratedDataset, GenerationSpec, UniformRandom, generate_dataset
from latentrl.data.minari_io import dataset_exists, read_metadata, resolve_root
from latentrl.data.naming import (
    DEFAULT_GRID_SIZE,
    DEFAULT_TILE_SIZE,
    PROCGEN_NATIVE_SIZE,
    SPLITS,
    multigrid_dataset_id,
    procgen_dataset_id,
    split_counts,
    split_seed_ranges,
    video_dataset_id,
)

Root = str | os.PathLike[str] | None

MULTIGRID_TASKS: tuple[str, ...] = ("empty", "goal")
POLICIES: tuple[str, ...] = ("random", "expert", "noisy-expert", "mixed")
METADATA_SPEC_KEY = "dataset_spec"
"""Key of the full :class:`DatasetSpec` (as a dict) in a dataset's ``latentrl`` metadata."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One dataset family: all splits of one env configuration."""

    env: Literal["multigrid", "procgen", "video"] = opt(
        "multigrid",
        "which simulator to record, or video: a folder imported by experiments/import_videos.py",
    )
    task: str = opt(
        "empty",
        "MultiGrid: empty (empty room) or goal (one goal cell per agent); Procgen: the game "
        "(see envs.procgen.GAMES); video: the --name given to import_videos.py",
    )
    agents: int = opt(4, "MultiGrid: number of agents (Procgen: always 1)")
    size: int = opt(DEFAULT_GRID_SIZE, "MultiGrid: room side in cells, walls included")
    tile_size: int = opt(
        DEFAULT_TILE_SIZE, "MultiGrid: pixels per cell (frames are size*tile-size pixels)"
    )
    frame_size: int = opt(
        PROCGEN_NATIVE_SIZE, "Procgen: frame side in pixels (64 is native; others are resampled)"
    )
    policy: Literal["random", "expert", "noisy-expert", "mixed"] = opt(
        "random",
        "behaviour policy: random actions, scripted goal-reaching expert (MultiGrid goal "
        "task), expert with random actions at rate eps, or mixed: each episode the expert's "
        "with probability expert-share, else random play",
    )
    repeat: int = opt(
        1, "random policy (and mixed's random episodes): steps each random action is held"
    )
    eps: float = opt(0.1, "noisy-expert: per-agent probability of a random action per step")
    expert_share: float = opt(0.5, "mixed: probability that an episode is the expert's")
    episodes: int = opt(1000, "episodes of the family, over all splits")
    steps: int = opt(64, "episode length cap T (frames = T + 1); MultiGrid's max_steps")
    splits: tuple[float, float, float] = opt(
        (80.0, 10.0, 10.0),
        "train/val/test proportions of episodes (ratios; 0 skips a split), written as "
        "-v0/-v1/-v2 with disjoint seeds",
    )
    seed: int = opt(0, "seed of the first episode; episode i of the family uses seed+i")

    def __post_init__(self) -> None:
        # Command lines and JSON give lists: keep the spec hashable and its JSON stable.
        object.__setattr__(self, "splits", tuple(float(p) for p in self.splits))
        if self.env == "procgen":
            object.__setattr__(self, "task", self.task.lower())  # ids are lower case
        if self.env not in ("multigrid", "procgen", "video"):
            raise ValueError(f"env must be multigrid, procgen or video, got {self.env!r}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if self.episodes < 1 or self.steps < 1:
            raise ValueError(
                f"episodes and steps must be >= 1, got {self.episodes} and {self.steps}"
            )
        if len(self.splits) != len(SPLITS):
            raise ValueError(
                f"splits needs {len(SPLITS)} proportions (train val test), got {self.splits}"
            )
        try:
            split_counts(self.episodes, self.splits)
        except ValueError as e:
            raise ValueError(
                f"splits (generate_datasets.py --splits; train_*.py --data-splits): {e}"
            ) from None
        if self.repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {self.repeat}")
        if not 0.0 <= self.eps <= 1.0:
            raise ValueError(f"eps must lie in [0, 1], got {self.eps}")
        if not 0.0 <= self.expert_share <= 1.0:
            raise ValueError(f"expert_share must lie in [0, 1], got {self.expert_share}")
        if self.env == "multigrid":
            if self.task not in MULTIGRID_TASKS:
                raise ValueError(
                    f"MultiGrid task must be one of {', '.join(MULTIGRID_TASKS)}, got {self.task!r}"
                )
            if self.policy != "random" and self.task != "goal":
                raise ValueError(
                    f"policy {self.policy} walks agents to their goals: use task goal "
                    "(generate_datasets.py --task goal; train_*.py --data-task goal)"
                )
            if self.agents < 1 or self.size < 3 or self.tile_size < 1:
                raise ValueError(
                    f"need agents >= 1, size >= 3 and tile_size >= 1, got {self.agents}, "
                    f"{self.size} and {self.tile_size}"
                )
        elif self.env == "video":
            video_dataset_id(self.task)  # raises on a malformed name
        else:
            if self.policy != "random":
                raise ValueError("Procgen has no scripted expert here: use policy random")
            if self.frame_size < 1:
                raise ValueError(f"frame_size must be >= 1, got {self.frame_size}")

    def split_episodes(self) -> dict[str, int]:
        """Split name -> episode count (every split, zeros included)."""
        return dict(zip(SPLITS, split_counts(self.episodes, self.splits), strict=True))

    def split_seeds(self) -> dict[str, range]:
        """Split name -> its episode seeds (disjoint, consecutive ranges from ``seed``)."""
        counts = list(self.split_episodes().values())
        return dict(zip(SPLITS, split_seed_ranges(self.seed, counts), strict=True))

    def dataset_id(self, split: str = "train") -> str:
        """Id of one split's dataset, e.g. ``multigrid/empty-agent_4-v0`` for ``train``."""
        if self.env == "video":
            return video_dataset_id(self.task, split=split)
        if self.env == "multigrid":
            return multigrid_dataset_id(
                self.task,
                self.agents,
                policy=self.policy,
                size=self.size,
                tile_size=self.tile_size,
                split=split,
                repeat=self.repeat,
            )
        return procgen_dataset_id(
            self.task,
            policy=self.policy,
            frame_size=self.frame_size,
            split=split,
            repeat=self.repeat,
        )

    def dataset_ids(self) -> dict[str, str]:
        """Split name -> dataset id, only for the splits with episodes (in train/val/test order)."""
        return {split: self.dataset_id(split) for split, n in self.split_episodes().items() if n}

    def generation_spec(self, compression: Compression | None = "gzip") -> GenerationSpec:
        """What the generation workers roll out (env id and kwargs, behaviour policy, cap).

        Imports ``envs`` (registration and, for MultiGrid, ``envs.multigrid.policies``): the
        env ids and the scripted policies are defined there.
        """
        # Imported here, not at module level: see the module docstring.
        if self.env == "video":
            raise ValueError(
                f"video datasets are imported, not generated: python "
                f"experiments/import_videos.py FOLDER --name {self.task}"
            )
        if self.env == "multigrid":
            from envs.multigrid.policies import PolicyFactory
            from envs.multigrid.registration import multigrid_env_id, multigrid_env_ids

            task = self.task.capitalize()
            env_id = multigrid_env_id(task, self.size, self.agents)
            if env_id not in multigrid_env_ids():
                # Any registered id of the task works: env_kwargs set size and team.
                env_id = multigrid_env_id(task, DEFAULT_GRID_SIZE, 1)
            policy: PolicyFactory | UniformRandom = PolicyFactory(
                self.policy, self.repeat, self.eps, self.expert_share
            )
        else:
            from envs.procgen import env_id as procgen_env_id

            env_id = procgen_env_id(self.task)
            policy = UniformRandom(self.repeat)
        return GenerationSpec(
            env_id,
            _env_kwargs(self),
            policy=policy,
            max_steps=self.steps,
            compression=compression,
            imports=("envs",),
        )

    def metadata(self) -> dict[str, Any]:
        """JSON metadata of every split (``generate_family`` adds ``split``); the whole spec is
        under ``"dataset_spec"``."""
        return {
            "env": self.env,
            "task": self.task,
            "agents": self.agents if self.env == "multigrid" else 1,
            "policy": self.policy,
            "policy_kwargs": _policy_kwargs(self),
            "base_seed": self.seed,
            "split_counts": self.split_episodes(),
            "generator": "latentrl.data.recipes",
            METADATA_SPEC_KEY: dataclasses.asdict(self),
        }

    def description(self) -> str:
        """One sentence for the dataset's Minari description."""
        if self.env == "multigrid":
            return (
                f"MultiGrid {self.task}, {self.agents} agents, {self.size}x{self.size} cells at "
                f"{self.tile_size} px, {self.policy} policy, episodes of {self.steps} steps."
            )
        return (
            f"Procgen {self.task} without backgrounds, {self.frame_size} px, random policy, "
            f"episodes of at most {self.steps} steps."
        )


def _policy_kwargs(spec: DatasetSpec) -> dict[str, Any]:
    """The parameters of the behaviour policy that matter for it."""
    if spec.policy == "random":
        return {"repeat": spec.repeat}
    if spec.policy == "noisy-expert":
        return {"eps": spec.eps}
    if spec.policy == "mixed":
        return {"repeat": spec.repeat, "expert_share": spec.expert_share}
    return {}


def _env_kwargs(spec: DatasetSpec) -> dict[str, Any]:
    """Keyword arguments of ``gym.make`` for this family's env."""
    if spec.env == "multigrid":
        return {
            "num_agents": spec.agents,
            "size": spec.size,
            "tile_size": spec.tile_size,
            "max_steps": spec.steps,
        }
    return {"frame_size": spec.frame_size}


def _content(spec: DatasetSpec, split: str) -> dict[str, Any]:
    """What determines the episodes of ``split``, by field (compared by ``ensure_datasets``).

    Fields that do not change the data (e.g. ``eps`` of a random policy, ``splits`` written
    as 8/1/1 instead of 80/10/10) are left out, so they never block reuse.
    """
    out: dict[str, Any] = {"env": spec.env, "task": spec.task}
    if spec.env == "multigrid":
        out.update(agents=spec.agents, size=spec.size, tile_size=spec.tile_size)
    else:
        out["frame_size"] = spec.frame_size
    out["policy"] = spec.policy
    out.update(_policy_kwargs(spec))
    seeds = spec.split_seeds()[split]
    out.update(steps=spec.steps, episodes_in_split=len(seeds))
    out["seeds"] = [seeds[0], seeds[-1]] if len(seeds) else None
    return out


def _stored_content(meta: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The fields of :func:`_content` as recorded in a dataset's ``latentrl`` metadata (``None``
    where absent: a dataset written by something else)."""
    env_kwargs = meta.get("env_kwargs") or {}
    policy_kwargs = meta.get("policy_kwargs") or {}
    stored = {
        "env": meta.get("env"),
        "task": meta.get("task"),
        "agents": meta.get("agents"),
        "size": env_kwargs.get("size"),
        "tile_size": env_kwargs.get("tile_size"),
        "frame_size": env_kwargs.get("frame_size"),
        "policy": meta.get("policy"),
        "repeat": policy_kwargs.get("repeat"),
        "eps": policy_kwargs.get("eps"),
        "expert_share": policy_kwargs.get("expert_share"),
        "steps": meta.get("max_steps"),
        "episodes_in_split": meta.get("num_episodes"),
        "seeds": meta.get("seed_range"),
    }
    return {key: stored[key] for key in wanted}


_FLAGS = {
    "episodes_in_split": "--episodes/--splits",
    "seeds": "--seed/--episodes/--splits",
}
"""Flags that set a compared field, where they are not just ``--field-name``."""


def _mismatches(spec: DatasetSpec, split: str, root: Root = None) -> list[str]:
    """How the existing dataset of ``split`` differs from ``spec`` (empty: it matches).

    One line per differing field: ``name: stored X, wanted Y``.
    """
    dataset_id = spec.dataset_id(split)
    meta = read_metadata(dataset_id, root).get("latentrl", {})
    wanted = _content(spec, split)
    stored = _stored_content(meta, wanted)
    return [
        f"{key} ({_FLAGS.get(key, '--' + key.replace('_', '-'))}): stored {stored[key]!r}, "
        f"wanted {value!r}"
        for key, value in wanted.items()
        if stored[key] != value
    ]


def _mismatch_error(spec: DatasetSpec, split: str, root: Root, diffs: list[str]) -> Exception:
    return DatasetExistsError(
        f"dataset {spec.dataset_id(split)!r} already exists under {resolve_root(root)} but was "
        "generated with other settings:\n  "
        + "\n  ".join(diffs)
        + "\nFix: regenerate it (overwrite=True; "
        "experiments/generate_datasets.py --overwrite), or use another root (--root) for these "
        "settings."
    )


def _generate_split(
    spec: DatasetSpec,
    split: str,
    gen: GenerationSpec,
    root: Root,
    *,
    workers: int,
    progress: bool,
    overwrite: bool,
) -> GeneratedDataset:
    dataset_id = spec.dataset_id(split)
    return generate_dataset(
        dataset_id,
        gen,
        spec.split_seeds()[split],
        root=root,
        workers=workers,
        metadata={**spec.metadata(), "split": split},
        description=spec.description(),
        overwrite=overwrite,
        progress=dataset_id if progress else False,
    )


def ensure_datasets(
    spec: DatasetSpec,
    root: Root = None,
    *,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
    compression: Compression = "gzip",
) -> dict[str, str]:
    """Make sure every split of ``spec`` exists under ``root``; split name -> dataset id.

    Missing splits are generated. Existing ones are reused only if their stored metadata matches
    ``spec`` (:func:`_content`); otherwise :class:`DatasetExistsError` names the
    dataset, the differing fields and the fix, before anything is generated.
    ``overwrite=True`` regenerates every split. ``compression`` applies to generated splits only
    (lossless either way, so existing splits are reused whatever theirs).
    """
    if spec.env == "video":
        return _imported(spec, root)
    ids = spec.dataset_ids()
    todo = []
    for split, dataset_id in ids.items():
        if overwrite or not dataset_exists(dataset_id, root):
            todo.append(split)
        elif diffs := _mismatches(spec, split, root):
            raise _mismatch_error(spec, split, root, diffs)
    if todo:
        gen = spec.generation_spec(compression)
        for split in todo:
            try:
                _generate_split(
                    spec,
                    split,
                    gen,
                    root,
                    workers=workers,
                    progress=progress,
                    overwrite=overwrite,
                )
            except DatasetExistsError:
                # Another process wrote it meanwhile: fine if it is what we wanted.
                if overwrite or not dataset_exists(ids[split], root):
                    raise
                if diffs := _mismatches(spec, split, root):
                    raise _mismatch_error(spec, split, root, diffs) from None
    return ids


def _imported(spec: DatasetSpec, root: Root) -> dict[str, str]:
    """The splits of an imported video dataset; raises if it is missing or its frame size is
    not the spec's (``--data-frame-size``)."""
    # Imported here: the importer pulls in PyAV only when a video dataset is used.
    from latentrl.data.video_import import imported_frame_size, imported_splits

    ids = imported_splits(spec.task, root)
    size = imported_frame_size(spec.task, root)
    if size != spec.frame_size:
        raise ValueError(
            f"video dataset {ids['train']!r} has {size}x{size} frames, the spec asks for "
            f"{spec.frame_size}: pass train_*.py --data-frame-size {size} (and train_tokenizer.py "
            f"--frame-size {size}), or re-import with import_videos.py --frame-size"
        )
    return ids


def video_family(name: str, root: Root = None) -> DatasetSpec:
    """The :class:`DatasetSpec` of the imported video dataset ``name`` (frame size from its
    metadata): what ``--video NAME`` on the training scripts stands for."""
    from latentrl.data.video_import import imported_frame_size

    return DatasetSpec(env="video", task=name, frame_size=imported_frame_size(name, root))


def generate_family(
    spec: DatasetSpec,
    root: Root = None,
    *,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
    compression: Compression = "gzip",
) -> list[GeneratedDataset]:
    """Generate every split of ``spec`` (what ``experiments/generate_datasets.py`` does).

    Refuses (:class:`DatasetExistsError`, before generating anything) if any split exists,
    unless ``overwrite``. Splits are written in train/val/test order with disjoint seeds.
    """
    ids = spec.dataset_ids()
    existing = [i for i in ids.values() if dataset_exists(i, root)]
    if existing and not overwrite:
        raise DatasetExistsError(
            f"these datasets already exist under {resolve_root(root)}:\n  "
            + "\n  ".join(existing)
            + "\nFix: pass overwrite=True (experiments/generate_datasets.py --overwrite) to "
            "replace them, or choose another root (--root)."
        )
    gen = spec.generation_spec(compression)
    return [
        _generate_split(
            spec, split, gen, root, workers=workers, progress=progress, overwrite=overwrite
        )
        for split in ids
    ]
