"""Your own videos as a dataset: a folder of mp4 / webm / avi / gif / mkv / mov files -> the
train/validation/test Minari datasets ``video/<name>-v0/-v1/-v2`` (see :mod:`latentrl.data.naming`).

Each file is decoded with PyAV (FFmpeg), frame-rate subsampled (``fps``: keep the first frame at
or after every ``1 / fps`` seconds of presentation time), centre-cropped to a square and resized
to ``frame_size`` pixels (area resampling, Pillow's ``BOX``), then cut into episodes of at most
``episode_frames`` frames (a last piece shorter than ``min_frames`` is dropped). Whole source
videos are assigned to splits (seeded shuffle, largest-remainder counts), so no video is seen in
two splits. The stored episodes are action-free: Minari needs an action per step, so each
step's action is a placeholder ``0`` in ``Discrete(1)``, and the metadata says
``"action_free": true`` (the training stages load these datasets without labels).

Bad inputs never cost data: a file that is not a readable video, has no frames, or changes
resolution midway is *skipped* and listed (:class:`Skipped`, printed by the script and stored in
the metadata); a folder with no usable video raises :class:`NoVideosError`; existing datasets
are replaced only with ``overwrite`` (checked before anything is decoded), and all splits are
written in staging folders that are renamed into place only after every video was written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shutil
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from latentrl.data.episode import Episode
from latentrl.data.errors import DatasetError, DatasetNotFoundError
from latentrl.data.minari_io import (
    DatasetWriter,
    check_writable,
    dataset_exists,
    read_metadata,
    resolve_root,
)
from latentrl.data.naming import SPLITS, split_counts, video_dataset_id

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".webm", ".avi", ".gif", ".mkv", ".mov", ".m4v", ".ts")
"""File endings the importer tries to decode; every other file is listed as skipped."""


class VideoImportError(DatasetError, ValueError):
    """A video file cannot be used (the message names the file, the problem and the fix)."""


class NoVideosError(DatasetError, FileNotFoundError):
    """The folder holds no usable video."""


@dataclasses.dataclass(frozen=True)
class ImportConfig:
    """How videos become episodes (see the module docstring)."""

    frame_size: int = 64
    fps: float | None = None
    episode_frames: int = 64
    min_frames: int = 8
    splits: tuple[float, float, float] = (80.0, 10.0, 10.0)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.frame_size < 4:
            raise ValueError(f"frame size must be >= 4 pixels, got {self.frame_size}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be > 0 (or None: keep every frame), got {self.fps}")
        if not 2 <= self.min_frames <= self.episode_frames:
            raise ValueError(
                f"need 2 <= min_frames <= episode_frames, got {self.min_frames} and "
                f"{self.episode_frames}"
            )
        if len(self.splits) != len(SPLITS) or any(p < 0 for p in self.splits):
            raise ValueError(f"splits needs 3 proportions >= 0 (train val test), got {self.splits}")
        if self.splits[0] <= 0:
            raise ValueError(f"the train split needs a positive share, got {self.splits}")


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A file left out, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class SourceVideo:
    """One decoded, resized video: frames uint8 ``(t, s, s, 3)`` and what it came from."""

    path: Path
    frames: np.ndarray
    source_fps: float
    source_size: tuple[int, int]
    source_frames: int


@dataclasses.dataclass(frozen=True)
class ImportResult:
    """What :func:`import_videos` wrote: split -> dataset id, per-split episode counts, the
    videos of each split and the skipped files."""

    ids: dict[str, str]
    episodes: dict[str, int]
    videos: dict[str, list[str]]
    skipped: list[Skipped]


# -- decoding -------------------------------------------------------------------------------------
def fit_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop ``(h, w, 3)`` to a square and resize it to ``size x size`` (area resampling)."""
    h, w = frame.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = frame[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    return np.asarray(Image.fromarray(square).resize((size, size), Image.BOX))


def _frame_times(stream: Any, frames: Iterator[Any]) -> Iterator[tuple[float, Any]]:
    rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    for i, frame in enumerate(frames):
        t = frame.time
        yield (float(i / rate) if t is None else float(t)), frame


def decode_video(path: Path, frame_size: int, fps: float | None = None) -> SourceVideo:
    """Decode, subsample and resize one video file; raises :class:`VideoImportError`."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise VideoImportError(
            f"{path}: not a readable video ({type(e).__name__}: {e}). Fix: re-encode it "
            "(e.g. ffmpeg -i IN -c:v libx264 OUT.mp4) or remove it from the folder."
        ) from None
    with container:
        if not container.streams.video:
            raise VideoImportError(
                f"{path}: the file has no video stream (audio only or not a video). Fix: remove "
                "it from the folder."
            )
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        source_fps = float(rate) if rate else float("nan")
        kept: list[np.ndarray] = []
        size: tuple[int, int] | None = None
        count, next_time = 0, None
        try:
            for t, frame in _frame_times(stream, container.decode(stream)):
                shape = (frame.height, frame.width)
                if size is None:
                    size = shape
                elif shape != size:
                    raise VideoImportError(
                        f"{path}: mixed resolutions: frame {count} is {shape[1]}x{shape[0]}, the "
                        f"first frames are {size[1]}x{size[0]}. Fix: re-encode the file at one "
                        "size (ffmpeg -i IN -vf scale=W:H OUT.mp4) or split it."
                    )
                count += 1
                if fps is not None:
                    if next_time is not None and t < next_time - 1e-6:
                        continue
                    next_time = (t if next_time is None else next_time) + 1.0 / fps
                kept.append(fit_frame(frame.to_ndarray(format="rgb24"), frame_size))
        except av.FFmpegError as e:
            if not kept:
                raise VideoImportError(
                    f"{path}: cannot decode its frames ({type(e).__name__}: {e}). Fix: "
                    "re-encode it or remove it from the folder."
                ) from None
            # A truncated file: keep what decoded (the count below says how much).
    if not kept or size is None:
        raise VideoImportError(
            f"{path}: zero frames decoded (an empty or broken stream). Fix: remove it from the "
            "folder or re-encode it."
        )
    return SourceVideo(path, np.stack(kept), source_fps, size, count)


def episodes_of(frames: np.ndarray, episode_frames: int, min_frames: int) -> list[np.ndarray]:
    """Cut frames ``(t, ...)`` into pieces of ``episode_frames`` (the last one kept if it has at
    least ``min_frames``)."""
    pieces = [frames[s : s + episode_frames] for s in range(0, len(frames), episode_frames)]
    return [p for p in pieces if len(p) >= min_frames]


def find_videos(folder: Path) -> tuple[list[Path], list[Skipped]]:
    """Video files under ``folder`` (recursive, sorted) and the other files, listed as skipped."""
    if not folder.is_dir():
        raise NoVideosError(f"{folder} is not a folder: pass the folder that holds the videos")
    videos, skipped = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.suffix.lower() in VIDEO_SUFFIXES:
            videos.append(path)
        else:
            skipped.append(
                Skipped(
                    str(path),
                    f"not a video file name (expected one of {', '.join(VIDEO_SUFFIXES)})",
                )
            )
    return videos, skipped


def assign_splits(names: Sequence[str], proportions: Sequence[float], seed: int) -> list[str]:
    """A split per source video: a seeded shuffle, then largest-remainder counts (train first)."""
    counts = split_counts(len(names), proportions)
    order = list(range(len(names)))
    random.Random(seed).shuffle(order)
    out = [""] * len(names)
    i = 0
    for split, n in zip(SPLITS, counts, strict=True):
        for j in order[i : i + n]:
            out[j] = split
        i += n
    return out


# -- writing --------------------------------------------------------------------------------------
def _episode(frames: np.ndarray, seed: int) -> Episode:
    steps = len(frames) - 1
    return Episode(
        frames=frames,
        actions=np.zeros(steps, np.int64),
        rewards=np.zeros(steps),
        terminations=np.zeros(steps, bool),
        truncations=np.concatenate([np.zeros(steps - 1, bool), [True]]),
        seed=seed,
    )


def video_dataset_ids(name: str) -> dict[str, str]:
    """Split -> id of every split an import of ``name`` may write."""
    return {split: video_dataset_id(name, split=split) for split in SPLITS}


def import_videos(
    folder: str | os.PathLike[str],
    name: str,
    config: ImportConfig = ImportConfig(),
    *,
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    on_skip: Callable[[Skipped], None] | None = None,
) -> ImportResult:
    """Import every video under ``folder`` as the datasets ``video/<name>-v0..v2`` (see the
    module docstring). Raises :class:`~latentrl.data.errors.DatasetExistsError` before decoding
    anything if a split exists and ``overwrite`` is off, and :class:`NoVideosError` if no file is
    usable; unusable files are skipped, passed to ``on_skip`` and listed in the result."""
    folder = Path(folder)
    ids = video_dataset_ids(name)
    for dataset_id in ids.values():
        check_writable(dataset_id, root, overwrite)
    sources, skipped = _decode_folder(folder, config, progress, on_skip)
    rel = [str(v.path.relative_to(folder)) for v in sources]
    assigned = assign_splits(rel, config.splits, config.seed)
    by_split = {s: [i for i, a in enumerate(assigned) if a == s] for s in SPLITS}
    videos = {s: [rel[i] for i in by_split[s]] for s in SPLITS if by_split[s]}
    spec_meta = {
        "env": "video",
        "task": name,
        "agents": 1,
        "policy": "none",
        "action_free": True,
        "source_folder": str(folder.resolve()),
        "import_config": dataclasses.asdict(config),
        "skipped": [dataclasses.asdict(s) for s in skipped],
        "dataset_spec": {"env": "video", "task": name, "frame_size": config.frame_size},
    }
    episodes = _write_splits(ids, by_split, sources, rel, spec_meta, name, config, root, overwrite)
    if overwrite:
        # Splits this import did not write would otherwise survive from the old import; removed
        # only now that the new splits are in place.
        for split, dataset_id in ids.items():
            if split not in episodes and dataset_exists(dataset_id, root):
                shutil.rmtree(resolve_root(root) / dataset_id, ignore_errors=True)
    return ImportResult({k: ids[k] for k in episodes}, episodes, videos, skipped)


def _decode_folder(
    folder: Path,
    config: ImportConfig,
    progress: bool,
    on_skip: Callable[[Skipped], None] | None,
) -> tuple[list[SourceVideo], list[Skipped]]:
    """Decode every video under ``folder``; unusable files become listed skips. Raises
    :class:`NoVideosError` (naming every skipped file) when nothing is usable."""
    paths, skipped = find_videos(folder)
    for s in skipped:
        if on_skip:
            on_skip(s)
    sources: list[SourceVideo] = []
    for path in tqdm(paths, desc=f"decoding {folder.name}", unit="video", disable=not progress):
        try:
            video = decode_video(path, config.frame_size, config.fps)
        except VideoImportError as e:
            skipped.append(Skipped(str(path), str(e).removeprefix(f"{path}: ")))
            if on_skip:
                on_skip(skipped[-1])
            continue
        if not episodes_of(video.frames, config.episode_frames, config.min_frames):
            skipped.append(
                Skipped(
                    str(path),
                    f"only {len(video.frames)} frames after subsampling, fewer than one episode "
                    f"needs (--min-frames {config.min_frames}); lower --min-frames or raise --fps",
                )
            )
            if on_skip:
                on_skip(skipped[-1])
            continue
        sources.append(video)
    if not sources:
        listing = "\n  ".join(str(s) for s in skipped) if skipped else "(the folder is empty)"
        raise NoVideosError(
            f"no usable video in {folder} (looked for {', '.join(VIDEO_SUFFIXES)}, recursively). "
            f"Files skipped:\n  {listing}\nFix: put readable video files in the folder. Nothing "
            "was written."
        )
    return sources, skipped


def _write_splits(
    ids: dict[str, str],
    by_split: dict[str, list[int]],
    sources: list[SourceVideo],
    rel: list[str],
    spec_meta: dict[str, Any],
    name: str,
    config: ImportConfig,
    root: str | os.PathLike[str] | None,
    overwrite: bool,
) -> dict[str, int]:
    """Write the split datasets, each cut into episodes; returns episodes per written split.
    Every split's writer stays open until all are written, so one failure discards them all."""
    s = config.frame_size
    episodes: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        writers = {}
        for split, members in by_split.items():
            if not members:
                continue
            writers[split] = stack.enter_context(
                DatasetWriter(
                    ids[split],
                    frame_shape=(s, s, 3),
                    action_space=gym.spaces.Discrete(1),
                    root=root,
                    metadata={
                        **spec_meta,
                        "split": split,
                        "sources": [
                            {
                                "file": rel[i],
                                "source_fps": sources[i].source_fps,
                                "source_size_hw": list(sources[i].source_size),
                                "source_frames": sources[i].source_frames,
                                "kept_frames": len(sources[i].frames),
                            }
                            for i in members
                        ],
                    },
                    description=f"Imported videos {name!r} ({split}), {s} px, action-free.",
                    overwrite=overwrite,
                )
            )
            episodes[split] = 0
            for i in members:
                for piece in episodes_of(
                    sources[i].frames, config.episode_frames, config.min_frames
                ):
                    writers[split].add(_episode(piece, seed=episodes[split]))
                    episodes[split] += 1
    return episodes


# -- reading back ---------------------------------------------------------------------------------
def imported_splits(name: str, root: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Split -> id of the splits an import of ``name`` wrote; raises if there is no train split."""
    ids = {k: v for k, v in video_dataset_ids(name).items() if dataset_exists(v, root)}
    if "train" not in ids:
        raise DatasetNotFoundError(
            f"no imported video dataset {video_dataset_id(name)!r} under "
            f"{resolve_root(root)}. Fix: python experiments/import_videos.py FOLDER --name {name}"
            " (same --root)."
        )
    return ids


def imported_frame_size(name: str, root: str | os.PathLike[str] | None = None) -> int:
    """The frame side of an imported dataset (from its metadata)."""
    meta = read_metadata(imported_splits(name, root)["train"], root).get("latentrl", {})
    return int(meta["frame_shape"][0])
