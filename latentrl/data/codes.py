"""Datasets encoded once by the tokenizer: code indices per frame, for stage-2 training.

Shapes: ``codes`` int16 ``(F, n)`` back to back over episodes (``episode_starts (E + 1,)``);
``actions`` int64 ``(F, a)`` (-1 on each episode's last frame) and ``positions`` int64
``(F, a, 2)`` where the source had labels. Windows never cross an episode boundary
(:func:`latentrl.data.windows.window_starts`). Stored as safetensors next to the tokenizer run.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file
from tqdm.auto import tqdm

from latentrl.data.cache import FrameCache
from latentrl.data.windows import window_starts
from latentrl.errors import ArtifactError
from latentrl.types import CodeBatch, frames_to_float


@dataclasses.dataclass(frozen=True)
class CodeCache:
    """Code indices of whole episodes (see module docstring)."""

    codes: np.ndarray
    episode_starts: np.ndarray
    actions: np.ndarray | None = None
    positions: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return len(self.codes)

    def starts(self, window: int) -> np.ndarray:
        """Every valid window start (cache frame index)."""
        starts = window_starts(self.episode_starts, window)
        if len(starts) == 0:
            longest = int(np.diff(self.episode_starts).max())
            raise ValueError(
                f"no episode has {window} frames (longest: {longest}); use a shorter window "
                "(train_lam.py --window) or longer episodes (train_lam.py --data-steps)"
            )
        return starts

    def windows(self, starts: np.ndarray, window: int, labels: bool = True) -> CodeBatch:
        """Windows beginning at ``starts`` ``(b,)`` as a :class:`CodeBatch` ``(b, window, n)``."""
        idx = np.asarray(starts, np.int64)[:, None] + np.arange(window)
        codes = torch.from_numpy(self.codes[idx].astype(np.int64))
        actions = positions = None
        if labels and self.actions is not None:
            actions = torch.from_numpy(self.actions[idx[:, :-1]])
        if labels and self.positions is not None:
            positions = torch.from_numpy(self.positions[idx])
        return CodeBatch(codes, actions, positions)

    def sample(
        self, window: int, batch: int, generator: torch.Generator, labels: bool = False
    ) -> CodeBatch:
        """A random batch of windows drawn with ``generator`` (action-free unless ``labels``)."""
        starts = self.starts(window)
        pick = torch.randint(len(starts), (batch,), generator=generator).numpy()
        return self.windows(starts[pick], window, labels=labels)

    def save(self, path: Path) -> None:
        """Write atomically as safetensors."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"codes": self.codes, "episode_starts": self.episode_starts}
        if self.actions is not None:
            tensors["actions"] = self.actions
        if self.positions is not None:
            tensors["positions"] = self.positions
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, codebook_size: int | None = None) -> CodeCache:
        """Read a cache written by :meth:`save`, checking every array's shape, dtype and range.

        Refusals are :class:`~latentrl.errors.ArtifactError` naming ``path``; ``codebook_size``
        (when given) bounds the code values.
        """
        if not path.is_file():
            raise FileNotFoundError(
                f"no encoded dataset at {path}: run experiments/train_tokenizer.py on this dataset first"
            )
        try:
            with safe_open(str(path), framework="np") as f:
                header = {
                    k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype())
                    for k in f.keys()  # noqa: SIM118 (safe_open is not iterable)
                }
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise _refuse(path, "a safetensors file", f"an unreadable one ({e})") from e
        _check_code_header(path, header)
        try:
            t = load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise _refuse(path, "a safetensors file", f"an unreadable one ({e})") from e
        codes, starts = t["codes"], t["episode_starts"]
        if len(starts) < 2 or starts[0] != 0 or starts[-1] != len(codes):
            raise _refuse(
                path,
                f"episode_starts from 0 to {len(codes)} (the frame count)",
                f"{starts[:1].tolist()} ... {starts[-1:].tolist()} ({len(starts)} values)",
            )
        if np.any(np.diff(starts) < 1):
            raise _refuse(path, "increasing episode_starts", "an episode of no frames")
        top = codebook_size if codebook_size is not None else np.iinfo(codes.dtype).max + 1
        if codes.size and (codes.min() < 0 or codes.max() >= top):
            raise _refuse(
                path, f"codes in [0, {top})", f"values from {codes.min()} to {codes.max()}"
            )
        return cls(codes, starts, t.get("actions"), t.get("positions"))


def _refuse(path: Path, expected: str, found: str) -> ArtifactError:
    return ArtifactError(
        f"{path}: expected {expected}, found {found}. Fix: delete the tokenizer run's codes/ "
        "folder and re-encode (re-run experiments/train_tokenizer.py), or restore the file."
    )


def _check_code_header(path: Path, header: dict[str, tuple[tuple[int, ...], str]]) -> None:
    allowed = {"codes", "episode_starts", "actions", "positions"}
    if not {"codes", "episode_starts"} <= set(header) or set(header) - allowed:
        raise _refuse(
            path, "tensors codes, episode_starts [, actions, positions]", str(sorted(header))
        )
    (codes_shape, codes_dtype), (starts_shape, starts_dtype) = (
        header["codes"],
        header["episode_starts"],
    )
    frames = codes_shape[0] if codes_shape else 0
    wanted = {
        "codes": (len(codes_shape) == 2 and codes_dtype in ("I16", "I32", "I64"), "integer (F, n)"),
        "episode_starts": (len(starts_shape) == 1 and starts_dtype == "I64", "int64 (E + 1,)"),
    }
    if "actions" in header:
        shape, dtype = header["actions"]
        wanted["actions"] = (
            len(shape) == 2 and shape[0] == frames and dtype == "I64",
            f"int64 ({frames}, a)",
        )
    if "positions" in header:
        shape, dtype = header["positions"]
        agents = (
            header["actions"][0][1]
            if "actions" in header and len(header["actions"][0]) == 2
            else None
        )
        ok = len(shape) == 3 and shape[0] == frames and shape[2] == 2 and dtype == "I64"
        ok = ok and (agents is None or shape[1] == agents)
        wanted["positions"] = (ok, f"int64 ({frames}, a, 2)")
    for name, (ok, expected) in wanted.items():
        if not ok:
            shape, dtype = header[name]
            raise _refuse(path, f"{name} {expected}", f"{dtype} {list(shape)}")


@torch.no_grad()
def encode_cache(
    tokenizer: torch.nn.Module,
    cache: FrameCache,
    device: torch.device | str = "cpu",
    batch_size: int = 512,
    progress: bool = True,
) -> CodeCache:
    """Encode every frame of ``cache`` to code indices with ``tokenizer.encode``."""
    tokenizer.eval()
    out = []
    for start in tqdm(range(0, cache.num_frames, batch_size), desc="encode", disable=not progress):
        frames = torch.from_numpy(cache.frames[start : start + batch_size]).to(device)
        x = frames_to_float(frames[None])[0]
        out.append(tokenizer.encode(x)[1].to(torch.int16).cpu().numpy())
    return CodeCache(np.concatenate(out), cache.episode_starts, cache.actions, cache.positions)
