"""Lossless Minari datasets of episodes: atomic writing, reading, listing.

Where datasets live. Minari finds datasets under ``$MINARI_DATASETS_PATH`` (default
``~/.minari/datasets``); a dataset ``ns/name-vN`` is the folder ``<root>/ns/name-vN/data/``
holding ``metadata.json`` and ``main_data.hdf5``. Every function here takes an explicit ``root``
(``None`` = Minari's default); to use Minari's own API on another root, set the variable::

    MINARI_DATASETS_PATH=<root> python -c "import minari; minari.load_dataset('multigrid/empty-agent_4-v0')"

or, in Python, ``with minari_root(root): minari.load_dataset(...)`` (:func:`load_minari_dataset`).

What is stored (per episode ``i``, in the group ``episode_i`` of ``main_data.hdf5``, exactly
Minari 0.5.3's layout, so ``minari.load_dataset`` reads it):

    observations  uint8 (T+1, c, h, w)  channel-first: Minari 0.5.3 JPEG-compresses channel-last
                                        uint8 images; declared ``Box(0, 255, (c, h, w), uint8)``.
                                        One chunk per frame, HDF5's standard gzip (deflate)
                                        filter at level 1 (lossless; any HDF5 reader decodes it).
    actions       int64 (T, a) or (T,)  the executed joint action, in the env's action space
                                        (MultiDiscrete -> (T, a); Discrete -> (T,))
    rewards, terminations, truncations  (T,)
    infos/<key>   (T+1, ...)            agent_pos, goal_pos, action (requested), ... (see
                                        ``latentrl.data.episode``)
    attrs         id, seed, total_steps

Minari's ``create_dataset_from_buffers`` creates the dataset (metadata, spaces, namespace); the
episodes are then written with h5py by :class:`DatasetWriter` itself, because Minari's writer
takes only raw arrays (the parent would have to receive and compress every frame) while ours
stores the chunks that generation workers already deflated. A test checks that the groups,
shapes, dtypes and attributes match what Minari's own writer produces.

Every array is chunked and resizable along time, as Minari's own writer makes them; with
``gzip`` the small label arrays are deflated too. The file uses HDF5 1.10 object formats
(readable by any h5py 3), which halve the per-episode overhead.

``metadata.json`` has Minari's fields plus ``"latentrl"``: a dict with env id and kwargs, agent
count, task, policy and its parameters, seeds, split, frame shape ``[h, w, c]``, frame layout
``"chw"``, compression.

Writing is atomic: a dataset is built under ``<root>/.staging/`` (hidden, so Minari ignores it)
and renamed into place when complete; a crash leaves at most a stale folder there, never a half
dataset under the final name. An existing dataset is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import gymnasium as gym
import h5py
import numpy as np
from einops import rearrange

from latentrl.data.episode import (
    COMPRESSIONS,
    Compression,
    EncodedFrames,
    Episode,
    deflate_module,
)
from latentrl.data.errors import (
    DatasetCorruptError,
    DatasetExistsError,
    DatasetIdError,
    DatasetNotFoundError,
)

METADATA_KEY = "latentrl"
"""Key of our own fields inside Minari's ``metadata.json``."""
FRAME_LAYOUT = "chw"
_DATA_DIR = "data"
_METADATA_FILE = "metadata.json"
_H5_FILE = "main_data.hdf5"
_STAGING_DIR = ".staging"


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """The datasets root: ``root`` if given, else ``$MINARI_DATASETS_PATH``, else Minari's default."""
    if root is not None:
        return Path(root).expanduser().resolve()
    env = os.environ.get("MINARI_DATASETS_PATH")
    if env:
        return Path(env).expanduser().resolve()
    return Path.home() / ".minari" / "datasets"


@contextlib.contextmanager
def minari_root(root: str | os.PathLike[str] | None) -> Iterator[Path]:
    """Point Minari's own functions at ``root`` for the duration of the block.

    Minari reads ``$MINARI_DATASETS_PATH`` at every call and has no root argument, so this sets
    the variable and restores it afterwards (process-wide: not for concurrent threads).
    """
    path = resolve_root(root)
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def load_minari_dataset(dataset_id: str, root: str | os.PathLike[str] | None = None):
    """``minari.load_dataset(dataset_id)`` under ``root``, with our not-found error.

    Returns a ``minari.MinariDataset``; its ``observations`` are channel-first ``(T+1, c, h, w)``.
    """
    import minari

    path = dataset_path(dataset_id, root)
    _require_exists(dataset_id, root, path)
    with minari_root(root):
        return minari.load_dataset(dataset_id)


def dataset_path(dataset_id: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Folder of ``dataset_id`` under ``root`` (whether or not it exists)."""
    _check_id(dataset_id)
    return resolve_root(root) / dataset_id


def list_datasets(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Ids of every dataset under ``root`` (folders with ``data/metadata.json``), sorted."""
    base = resolve_root(root)
    if not base.is_dir():
        return []
    found = []
    for meta in base.rglob(f"{_DATA_DIR}/{_METADATA_FILE}"):
        rel = meta.parent.parent.relative_to(base)
        if not any(part.startswith(".") for part in rel.parts):
            found.append(rel.as_posix())
    return sorted(found)


def dataset_exists(dataset_id: str, root: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``dataset_id`` exists (complete) under ``root``."""
    return (dataset_path(dataset_id, root) / _DATA_DIR / _METADATA_FILE).is_file()


def check_writable(
    dataset_id: str, root: str | os.PathLike[str] | None = None, overwrite: bool = False
) -> None:
    """Raise :class:`DatasetExistsError` if ``dataset_id`` exists and ``overwrite`` is off."""
    path = dataset_path(dataset_id, root)
    if path.exists() and not overwrite:
        raise DatasetExistsError(
            f"dataset {dataset_id!r} already exists at {path}. Fix: pass overwrite=True "
            "(experiments/generate_datasets.py --overwrite) to replace it, or use another "
            "id/root."
        )


def _check_id(dataset_id: str) -> None:
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        # Minari's parser raises TypeError for some malformed ids ("foo", "ns/name-vx").
        if not isinstance(dataset_id, str):
            raise TypeError(f"not a string but {type(dataset_id).__name__}")
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError, AttributeError) as e:
        raise DatasetIdError(
            f"malformed dataset id {dataset_id!r}: expected namespace/name-vN, e.g. "
            "'multigrid/empty-agent_4-v0'. Fix: copy the id from list_datasets() or from "
            "experiments/generate_datasets.py's output (ids are built by latentrl.data.naming)."
        ) from e


def _require_exists(dataset_id: str, root: str | os.PathLike[str] | None, path: Path) -> None:
    if (path / _DATA_DIR / _METADATA_FILE).is_file():
        return
    base = resolve_root(root)
    existing = list_datasets(base)
    listing = "\n  ".join(existing) if existing else "(none)"
    raise DatasetNotFoundError(
        f"no dataset {dataset_id!r} under {base} (looked for {path / _DATA_DIR}).\n"
        f"Datasets there:\n  {listing}\n"
        "Fix: check the id and the root (generate_datasets.py --root / MINARI_DATASETS_PATH), "
        "or generate it with experiments/generate_datasets.py."
    )


def read_metadata(dataset_id: str, root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The dataset's ``metadata.json`` as a dict (Minari's fields plus ``"latentrl"``)."""
    path = dataset_path(dataset_id, root)
    _require_exists(dataset_id, root, path)
    meta_file = path / _DATA_DIR / _METADATA_FILE
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetCorruptError(
            f"cannot read {meta_file}: {e}; expected Minari's metadata JSON. Fix: delete {path} "
            "and regenerate the dataset (experiments/generate_datasets.py --overwrite)."
        ) from e
    if not isinstance(meta, dict) or not isinstance(meta.get(METADATA_KEY, {}), dict):
        raise DatasetCorruptError(
            f"{meta_file}: expected a JSON object (with a {METADATA_KEY!r} object), found "
            f"{type(meta).__name__}. Fix: delete {path} and regenerate the dataset "
            "(experiments/generate_datasets.py --overwrite)."
        )
    return meta


def _space_to_action_shape(action_space: gym.Space) -> tuple[int, ...]:
    if isinstance(action_space, gym.spaces.Discrete):
        return ()
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return tuple(action_space.shape)
    raise TypeError(
        f"only Discrete and MultiDiscrete action spaces are supported, got {action_space}"
    )


class DatasetWriter:
    """Writes episodes into a new Minari dataset, atomically (see module docstring).

    Use as a context manager; the dataset appears under its final name only when the block exits
    without an exception::

        with DatasetWriter("multigrid/empty-agent_4-v0", root=root, frame_shape=(128, 128, 3),
                           action_space=env.action_space, metadata={...}) as writer:
            for episode in episodes:
                writer.add(episode)

    Args:
        dataset_id: ``namespace/name-vN`` (see ``latentrl.data.naming``).
        frame_shape: ``(h, w, c)`` of every frame.
        action_space: the env's joint action space (Discrete or MultiDiscrete).
        root: datasets root (``None`` = ``$MINARI_DATASETS_PATH`` or Minari's default).
        env_spec: recorded so that ``dataset.recover_environment()`` works.
        metadata: JSON-serialisable fields stored under ``metadata["latentrl"]``.
        description: Minari's free-text description.
        overwrite: replace an existing dataset of the same id (otherwise refuse).
        compression: ``"gzip"`` (lossless deflate, default) or ``"none"``.
        level: zlib level for ``gzip``.
    """

    def __init__(
        self,
        dataset_id: str,
        *,
        frame_shape: tuple[int, int, int],
        action_space: gym.Space,
        root: str | os.PathLike[str] | None = None,
        env_spec: gym.envs.registration.EnvSpec | None = None,
        metadata: dict[str, Any] | None = None,
        description: str | None = None,
        overwrite: bool = False,
        compression: Compression = "gzip",
        level: int = 1,
    ) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"unknown compression {compression!r}: use one of {COMPRESSIONS}")
        h, w, c = frame_shape
        self.dataset_id = dataset_id
        self.root = resolve_root(root)
        self.final_path = dataset_path(dataset_id, self.root)
        self.frame_shape = (h, w, c)
        self.action_space = action_space
        self._action_shape = _space_to_action_shape(action_space)
        self.env_spec = env_spec
        self.metadata = dict(metadata or {})
        self.description = description
        self.overwrite = overwrite
        self.compression: Compression = compression
        self.level = level
        self.num_episodes = 0
        self.num_steps = 0
        self.raw_bytes = 0
        self._seeds: list[int] = []
        self._staging: Path | None = None
        self._file: h5py.File | None = None
        self._check_not_exists()

    def _check_not_exists(self) -> None:
        check_writable(self.dataset_id, self.root, self.overwrite)

    @property
    def data_path(self) -> Path:
        """Folder of the dataset being written (inside the staging area until finished)."""
        assert self._staging is not None, "use DatasetWriter as a context manager"
        return self._staging / self.dataset_id / _DATA_DIR

    def __enter__(self) -> DatasetWriter:
        import minari

        self._check_not_exists()
        self._staging = self.root / _STAGING_DIR / uuid.uuid4().hex
        self._staging.mkdir(parents=True)
        h, w, c = self.frame_shape
        obs_space = gym.spaces.Box(0, 255, (c, h, w), np.uint8)
        try:
            with minari_root(self._staging), warnings.catch_warnings():
                # Minari warns about every optional field (author email, permalink, eval env...).
                warnings.simplefilter("ignore", UserWarning)
                minari.create_dataset_from_buffers(
                    self.dataset_id,
                    [],
                    observation_space=obs_space,
                    action_space=self.action_space,
                    algorithm_name=str(self.metadata.get("policy", "unknown")),
                    author="latentrl",
                    description=self.description,
                )
            # HDF5 1.10's object formats (any h5py 3 reads them) halve the per-episode overhead.
            self._file = h5py.File(
                self.data_path / _H5_FILE, "a", track_order=True, libver=("v110", "latest")
            )
        except BaseException:
            self._discard()
            raise
        return self

    def add(self, episode: Episode) -> None:
        """Append one episode (frames raw or already encoded)."""
        if self._file is None:
            raise RuntimeError("use DatasetWriter as a context manager")
        frames = episode.frames
        if not isinstance(frames, EncodedFrames):
            frames = episode.encoded(self.compression, self.level).frames
        assert isinstance(frames, EncodedFrames)
        h, w, c = self.frame_shape
        if frames.shape[1:] != (c, h, w):
            got = frames.shape[2:] + frames.shape[1:2]
            raise ValueError(f"episode frames are {got} (h, w, c); this dataset stores {(h, w, c)}")
        actions = np.asarray(episode.actions, dtype=np.int64)
        if int(np.prod(actions.shape[1:])) != int(np.prod(self._action_shape)):
            raise ValueError(
                f"episode actions are {actions.shape[1:]} per step; the action space "
                f"{self.action_space} takes {self._action_shape or 'a scalar'}"
            )
        actions = actions.reshape(len(actions), *self._action_shape)
        steps = len(actions)

        i = self.num_episodes
        group = self._file.create_group(f"episode_{i}")
        group.attrs["id"] = i
        if episode.seed is not None:
            group.attrs["seed"] = int(episode.seed)
        group.attrs["total_steps"] = steps
        self._write_frames(group, frames)
        # Labels are small int64 arrays of small values: deflate shrinks them ~10x for little.
        gzip = self.compression == "gzip"
        for name, data in (
            ("actions", actions),
            ("rewards", np.asarray(episode.rewards, np.float64)),
            ("terminations", np.asarray(episode.terminations, bool)),
            ("truncations", np.asarray(episode.truncations, bool)),
        ):
            _create_resizable(group, name, data, gzip)
        if episode.infos:
            infos = group.create_group("infos")
            for key, value in episode.infos.items():
                _create_resizable(infos, key, np.asarray(value), gzip)

        self.num_episodes += 1
        self.num_steps += steps
        self.raw_bytes += frames.nbytes
        if episode.seed is not None:
            self._seeds.append(int(episode.seed))

    def _write_frames(self, group: h5py.Group, frames: EncodedFrames) -> None:
        t, c, h, w = frames.shape
        kwargs: dict[str, Any] = {}
        if frames.compression == "gzip":
            kwargs = {"compression": "gzip", "compression_opts": frames.level}
        dset = group.create_dataset(
            "observations",
            shape=(t, c, h, w),
            dtype=np.uint8,
            chunks=(1, c, h, w),
            maxshape=(None, c, h, w),
            **kwargs,
        )
        if frames.compression == "gzip":
            # The workers already deflated each frame: store their bytes as the chunks.
            for i, chunk in enumerate(frames.chunks):
                dset.id.write_direct_chunk((i, 0, 0, 0), chunk)
        else:
            assert frames.raw is not None
            dset.write_direct(frames.raw)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._discard()
            return
        try:
            self._finish()
        except BaseException:
            self._discard()
            raise

    def _finish(self) -> None:
        from minari.dataset.minari_storage import MinariStorage

        assert self._file is not None and self._staging is not None
        self._file.close()
        self._file = None
        storage = MinariStorage.read(self.data_path)
        h, w, c = self.frame_shape
        ours = {
            **self.metadata,
            "frame_shape": [h, w, c],
            "frame_layout": FRAME_LAYOUT,
            "compression": self.compression,
            "compression_level": self.level,
            "num_episodes": self.num_episodes,
        }
        if self._seeds:
            ours["seed_range"] = [min(self._seeds), max(self._seeds)]
        update: dict[str, Any] = {
            "total_episodes": self.num_episodes,
            "total_steps": self.num_steps,
            "dataset_size": float(storage.get_size()),
            METADATA_KEY: ours,
        }
        if self.env_spec is not None:
            try:
                update["env_spec"] = self.env_spec.to_json()
            except (TypeError, ValueError) as e:
                warnings.warn(
                    f"{self.dataset_id}: env spec not stored ({e}); recover_environment() will "
                    "not work. Register the env with a string entry point to fix this.",
                    stacklevel=3,
                )
        storage.update_metadata(update)
        self._move_into_place()

    def _move_into_place(self) -> None:
        assert self._staging is not None
        self._check_not_exists()  # someone else may have written it meanwhile
        new = self._staging / self.dataset_id
        self.final_path.parent.mkdir(parents=True, exist_ok=True)
        # Minari lists namespaces by their namespace_metadata.json: copy the ones we lack.
        rel = Path(self.dataset_id).parent
        for depth in range(1, len(rel.parts) + 1):
            sub = Path(*rel.parts[:depth]) / "namespace_metadata.json"
            if (self._staging / sub).is_file() and not (self.root / sub).exists():
                shutil.copyfile(self._staging / sub, self.root / sub)
        old = None
        if self.final_path.exists():
            old = self._staging / "replaced"
            os.replace(self.final_path, old)
        os.replace(new, self.final_path)
        shutil.rmtree(self._staging, ignore_errors=True)
        self._staging = None
        self._remove_empty_staging()

    def _discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        self._remove_empty_staging()

    def _remove_empty_staging(self) -> None:
        with contextlib.suppress(OSError):
            (self.root / _STAGING_DIR).rmdir()  # only succeeds when empty


def _one_deflate_chunk_per_frame(dset: h5py.Dataset) -> bool:
    return (
        dset.chunks == (1, *dset.shape[1:])
        and dset.compression == "gzip"
        and not dset.shuffle
        and not dset.fletcher32
        and dset.scaleoffset is None
    )


def _create_resizable(group: h5py.Group, name: str, data: np.ndarray, gzip: bool) -> None:
    # Minari's own writer makes every dataset chunked and resizable along time.
    kwargs: dict[str, Any] = {"compression": "gzip", "compression_opts": 1} if gzip else {}
    group.create_dataset(name, data=data, chunks=True, maxshape=(None, *data.shape[1:]), **kwargs)


def write_dataset(
    dataset_id: str,
    episodes: Iterable[Episode],
    *,
    frame_shape: tuple[int, int, int],
    action_space: gym.Space,
    root: str | os.PathLike[str] | None = None,
    **writer_kwargs: Any,
) -> Path:
    """Write ``episodes`` as a new dataset (atomically); return its folder.

    ``writer_kwargs`` go to :class:`DatasetWriter` (``metadata``, ``overwrite``, ...).
    """
    with DatasetWriter(
        dataset_id, frame_shape=frame_shape, action_space=action_space, root=root, **writer_kwargs
    ) as writer:
        for episode in episodes:
            writer.add(episode)
    return writer.final_path


class DatasetReader:
    """Fast read access to one dataset written by :class:`DatasetWriter` (h5py, no Minari).

    Errors: :class:`DatasetNotFoundError` (lists what exists under the root) and
    :class:`DatasetCorruptError` (names the file and says to regenerate it).
    """

    def __init__(self, dataset_id: str, root: str | os.PathLike[str] | None = None) -> None:
        self.dataset_id = dataset_id
        self.root = resolve_root(root)
        self.path = dataset_path(dataset_id, self.root)
        self.metadata = read_metadata(dataset_id, self.root)
        self.info: dict[str, Any] = self.metadata.get(METADATA_KEY, {})
        self.h5_path = self.path / _DATA_DIR / _H5_FILE
        self._file: h5py.File | None = None
        self._agents: int | None = None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        with self._guard():
            self._file = h5py.File(self.h5_path, "r")
            self.num_episodes = int(self.metadata["total_episodes"])
            if len(self._file.keys()) != self.num_episodes:
                raise KeyError(
                    f"{len(self._file.keys())} episode groups, metadata says {self.num_episodes}"
                )
            first = self._group(0)["observations"] if self.num_episodes else None
        if first is not None:
            if first.ndim != 4 or first.dtype != np.uint8:
                raise self._bad(
                    "episode_0/observations",
                    "uint8 (T+1, c, h, w) video frames",
                    f"{first.dtype} {first.shape}",
                )
            _, c, h, w = first.shape
            self.frame_shape: tuple[int, int, int] = (h, w, c)
            stored = self.info.get("frame_shape")
            if stored is not None and stored != [h, w, c]:
                raise self._bad(
                    "episode_0/observations",
                    f"frames of (h, w, c) = {stored!r} (metadata.json)",
                    f"{(h, w, c)}",
                )
        else:
            stored = self.info.get("frame_shape", [0, 0, 0])
            if not (isinstance(stored, list) and len(stored) == 3):
                raise self._bad("metadata.json", "frame_shape [h, w, c]", repr(stored))
            self.frame_shape = tuple(stored)  # type: ignore[assignment]

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (
            OSError,
            KeyError,
            RuntimeError,
            ValueError,
            TypeError,
            IndexError,
            AttributeError,
            OverflowError,
        ) as e:
            if isinstance(e, DatasetCorruptError):
                raise
            raise self._corrupt(e) from e

    def _corrupt(self, e: BaseException) -> DatasetCorruptError:
        return DatasetCorruptError(
            f"dataset {self.dataset_id!r}: cannot read {self.h5_path}: expected the HDF5 file "
            f"of the dataset's episodes, found an error ({type(e).__name__}: {e}). The file is "
            f"truncated or damaged (an interrupted copy?). Fix: delete {self.path} and "
            "regenerate it (experiments/generate_datasets.py --overwrite)."
        )

    def _group(self, episode: int) -> h5py.Group:
        assert self._file is not None
        return self._file[f"episode_{episode}"]

    def close(self) -> None:
        """Close the HDF5 file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> DatasetReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_episode(self, episode: int) -> int:
        """Check every array of ``episode`` against this dataset's layout; returns its T.

        Reads shapes and dtypes only (no data). Frames must be uint8 ``(T+1, c, h, w)`` with the
        dataset's ``(h, w, c)``; actions integer ``(T, a)`` or ``(T,)`` with the first
        episode's ``a``; rewards, terminations and truncations ``(T,)``; every info ``(T+1, ...)``.
        """
        with self._guard():
            assert self._file is not None
            name = f"episode_{episode}"
            if name not in self._file:
                raise self._bad(name, f"{self.num_episodes} episode groups", "it missing")
            group = self._file[name]
            if "total_steps" not in group.attrs:
                raise self._bad(name, "a total_steps attribute", "none")
            t = int(group.attrs["total_steps"])
            if t < 1:
                # Episode (and so the writer) needs T >= 1: one frame is no transition.
                raise self._bad(name, "total_steps >= 1 (at least 2 frames)", f"total_steps = {t}")
            h, w, c = self.frame_shape
            for key in ("observations", "actions", "rewards", "terminations", "truncations"):
                if key not in group:
                    raise self._bad(name, f"a dataset {key!r}", f"only {sorted(group.keys())}")
            obs = group["observations"]
            want = (t + 1, c, h, w)
            if obs.dtype != np.uint8 or obs.shape != want:
                raise self._bad(f"{name}/observations", f"uint8 {want}", f"{obs.dtype} {obs.shape}")
            act = group["actions"]
            agents = int(np.prod(act.shape[1:], dtype=np.int64))
            if act.shape[:1] != (t,) or act.ndim > 2 or not np.issubdtype(act.dtype, np.integer):
                raise self._bad(
                    f"{name}/actions", f"integer ({t}, a) or ({t},)", f"{act.dtype} {act.shape}"
                )
            if self._agents is None:
                self._agents = agents
            elif agents != self._agents:
                raise self._bad(
                    f"{name}/actions",
                    f"{self._agents} agents (as episode 0)",
                    f"{agents} ({act.shape})",
                )
            for key in ("rewards", "terminations", "truncations"):
                if group[key].shape != (t,):
                    raise self._bad(f"{name}/{key}", f"({t},)", str(group[key].shape))
            if "infos" in group:
                for key, value in group["infos"].items():
                    if not isinstance(value, h5py.Dataset) or value.shape[:1] != (t + 1,):
                        found = value.shape if isinstance(value, h5py.Dataset) else "a group"
                        raise self._bad(f"{name}/infos/{key}", f"({t + 1}, ...)", str(found))
                pos = group["infos"].get("agent_pos")
                if pos is not None and (
                    pos.shape[1:] != (agents, 2) or not np.issubdtype(pos.dtype, np.integer)
                ):
                    raise self._bad(
                        f"{name}/infos/agent_pos",
                        f"integer ({t + 1}, {agents}, 2)",
                        f"{pos.dtype} {pos.shape}",
                    )
        return t

    @property
    def num_agents(self) -> int:
        """Agents per action row (1 for a Discrete action space), from episode 0's actions."""
        if self._agents is None:
            if not self.num_episodes:
                raise DatasetCorruptError(f"{self.h5_path}: no episodes, so no agent count")
            self.check_episode(0)
        assert self._agents is not None
        return self._agents

    def _bad(self, where: str, expected: str, found: str) -> DatasetCorruptError:
        return DatasetCorruptError(
            f"dataset {self.dataset_id!r}: {self.h5_path} [{where}]: expected {expected}, found "
            f"{found}. The file is damaged or was not written by latentrl. Fix: delete "
            f"{self.path} and regenerate it (experiments/generate_datasets.py --overwrite)."
        )

    def episode_steps(self) -> np.ndarray:
        """int64 ``(E,)``: T of every episode (from the attributes; reads no frames)."""
        with self._guard():
            return np.array(
                [int(self._group(i).attrs["total_steps"]) for i in range(self.num_episodes)],
                np.int64,
            )

    def info_keys(self, episode: int = 0) -> list[str]:
        """Keys stored in ``infos`` of an episode."""
        with self._guard():
            group = self._group(episode)
            return list(group["infos"].keys()) if "infos" in group else []

    def read_frames_into(self, episode: int, out: np.ndarray, scratch: np.ndarray) -> None:
        """Decode the first ``len(out)`` frames of ``episode`` into ``out`` uint8 ``(n, h, w, c)``.

        ``scratch`` is a reusable uint8 ``(>= n, c, h, w)`` buffer for the channel-first frames.
        Safe to call from several threads (h5py serialises file access; inflating and copying
        run outside its lock), which is how :class:`~latentrl.data.cache.FrameCache` reads.
        """
        n = len(out)
        with self._guard():
            dset = self._group(episode)["observations"]
            blobs = None
            if _one_deflate_chunk_per_frame(dset):
                blobs = [dset.id.read_direct_chunk((i, 0, 0, 0)) for i in range(n)]
            else:
                dset.read_direct(scratch, np.s_[:n], np.s_[:n])
        if blobs is not None:
            # Our own chunks: inflate them here (the GIL is released) rather than in HDF5.
            inflate = deflate_module().decompress
            try:
                for i, (mask, blob) in enumerate(blobs):
                    raw = blob if mask else inflate(blob)  # mask != 0: filter skipped
                    scratch[i] = np.frombuffer(raw, np.uint8).reshape(scratch.shape[1:])
            except (ValueError, deflate_module().error) as e:
                raise self._corrupt(e) from e
        # A strided copy per channel is several times faster than a 4-d transposing copy.
        for ch in range(out.shape[-1]):
            out[..., ch] = scratch[:n, ch]

    def read_array(self, episode: int, key: str) -> np.ndarray:
        """``actions``/``rewards``/``terminations``/``truncations``, or ``infos/<key>``."""
        with self._guard():
            return self._group(episode)[key][()]

    def read_episode(self, episode: int) -> Episode:
        """The whole episode, frames decoded to uint8 ``(T+1, h, w, c)``."""
        with self._guard():
            group = self._group(episode)
            obs = group["observations"][()]
            actions = group["actions"][()]
            infos = {}
            if "infos" in group:
                infos = {k: v[()] for k, v in group["infos"].items()}
            seed = group.attrs.get("seed")
            rest = [group[k][()] for k in ("rewards", "terminations", "truncations")]
        frames = np.ascontiguousarray(rearrange(obs, "t c h w -> t h w c"))
        return Episode(
            frames,
            actions.reshape(len(actions), int(np.prod(actions.shape[1:], dtype=np.int64))),
            *rest,
            seed=None if seed is None else int(seed),
            infos=infos,
        )

    def episodes(self) -> Iterator[Episode]:
        """Every episode in order (see :meth:`read_episode`)."""
        for i in range(self.num_episodes):
            yield self.read_episode(i)


def dataclass_to_json(obj: Any) -> Any:
    """JSON-friendly form of dataclasses/paths/numpy scalars (for metadata fields)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: dataclass_to_json(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): dataclass_to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [dataclass_to_json(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj
