"""Atomic, unpickle-free checkpoints: safetensors for tensors, JSON for everything else.

A checkpoint is a folder ``<name>/`` holding ``model.safetensors``, ``optimizer.safetensors``
(optional) and ``state.json``. It is written into a temporary sibling and renamed into place,
so a crash never leaves a half-written checkpoint under the final name.

Reading trusts nothing: a weights file's header (names, shapes, dtypes) is checked against the
model before any tensor is loaded, and the SHA-256 of the tensors, stored in the header when
written, is compared after loading (files written before it was stored load unchecked). Every
refusal is an :class:`~latentrl.errors.ArtifactError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from latentrl.errors import ArtifactError

DIGEST_KEY = "latentrl_sha256"
"""Header metadata key of the tensors' SHA-256 (:func:`tensor_digest`)."""
_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _refuse(path: Path, expected: str, found: str) -> ArtifactError:
    return ArtifactError(
        f"{path}: expected {expected}, found {found}. Fix: re-train (or resume from an intact "
        "checkpoint), or copy the file again from the run that wrote it."
    )


def read_header(path: Path) -> tuple[dict[str, tuple[tuple[int, ...], str]], dict[str, str]]:
    """Names -> (shape, dtype) and the metadata of a safetensors file; reads no tensor."""
    if not path.is_file():
        raise FileNotFoundError(f"no weights at {path}: train the model first or check the path")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = {}
            for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                part = f.get_slice(key)
                header[key] = (tuple(part.get_shape()), str(part.get_dtype()))
            return header, dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _refuse(path, "a safetensors file", f"an unreadable one ({e})") from e


def check_header(path: Path, expected: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """Refuse ``path`` unless it holds exactly ``expected``'s names, shapes and dtypes."""
    header, meta = read_header(path)
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    if missing or unexpected:
        raise _refuse(
            path,
            f"the {len(expected)} tensors of this model",
            f"{len(missing)} missing {missing[:5]} and {len(unexpected)} unexpected "
            f"{unexpected[:5]} (another model's or another version's weights?)",
        )
    wrong = [
        f"{k}: {header[k][1]} {list(header[k][0])} instead of "
        f"{_DTYPES.get(v.dtype, v.dtype)} {list(v.shape)}"
        for k, v in expected.items()
        if header[k] != (tuple(v.shape), _DTYPES.get(v.dtype, str(v.dtype)))
    ]
    if wrong:
        raise _refuse(path, "tensors shaped as this model's", "; ".join(wrong[:5]))
    return meta


def load_tensors(
    path: Path, expected: Mapping[str, torch.Tensor], device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` after :func:`check_header`, their digest verified if stored."""
    meta = check_header(path, expected)
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _refuse(path, "a safetensors file", f"an unreadable one ({e})") from e
    stored = meta.get(DIGEST_KEY)
    if stored is not None and tensor_digest(tensors) != stored:
        raise _refuse(path, f"tensors of SHA-256 {stored[:12]}...", "other bytes (damaged)")
    return tensors


def _optimizer_to_flat(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_flat(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    for pid, values in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_weights(model: nn.Module, path: Path) -> None:
    """Write ``model``'s state dict to ``path`` (safetensors) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={DIGEST_KEY: tensor_digest(state)})
    os.replace(tmp, path)


def load_weights(model: nn.Module, path: Path) -> None:
    """Load safetensors weights into ``model`` (strict: every name, shape and dtype must match)."""
    device = next(model.parameters()).device
    model.load_state_dict(load_tensors(path, model.state_dict(), device))


def save_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    state: dict[str, Any],
) -> None:
    """Atomically write a checkpoint folder (model, optimizer, JSON-able training state)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_weights(model, tmp / "model.safetensors")
        meta: dict[str, Any] = {"state": state}
        if optimizer is not None:
            tensors, opt_meta = _optimizer_to_flat(optimizer)
            save_file(
                tensors,
                str(tmp / "optimizer.safetensors"),
                metadata={DIGEST_KEY: tensor_digest(tensors)},
            )
            meta["optimizer"] = opt_meta
        (tmp / "state.json").write_text(json.dumps(meta, indent=1))
        # rename is atomic only for an absent target: move the old one aside first.
        old = folder.with_name(f".{folder.name}.old")
        if folder.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def read_state(folder: Path) -> dict[str, Any]:
    """The training state of a checkpoint folder (``{"step": ...}`` and what a stage added)."""
    return _read_meta(folder)["state"]


def _read_meta(folder: Path) -> dict[str, Any]:
    meta_path = folder / "state.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {folder} (missing state.json): nothing to resume from"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _refuse(meta_path, "JSON", f"unreadable text ({e})") from e
    if not isinstance(meta, dict) or not isinstance(meta.get("state"), dict):
        raise _refuse(meta_path, 'a JSON object with a "state" object', repr(meta)[:80])
    step = meta["state"].get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise _refuse(meta_path, "a step count >= 0", repr(step))
    return meta


def load_checkpoint(
    folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> dict[str, Any]:
    """Restore model (and optimizer) from a checkpoint folder; returns the training state."""
    meta_path = folder / "state.json"
    meta = _read_meta(folder)
    load_weights(model, folder / "model.safetensors")
    if optimizer is not None and "optimizer" in meta:
        path = folder / "optimizer.safetensors"
        params = [p for group in optimizer.param_groups for p in group["params"]]
        header, _ = read_header(path)
        for name, (shape, _dtype) in header.items():
            pid, _, _key = name.partition(".")
            if not pid.isdigit() or int(pid) >= len(params):
                raise _refuse(path, f"optimizer state of {len(params)} parameters", repr(name))
            want = tuple(params[int(pid)].shape)
            # AdamW: a 0-d step counter and moments shaped as their parameter.
            if shape and shape != want:
                raise _refuse(path, f"{name} of shape {list(want)}", str(list(shape)))
        try:
            tensors = load_file(str(path))
            stored = read_header(path)[1].get(DIGEST_KEY)
            if stored is not None and tensor_digest(tensors) != stored:
                raise _refuse(path, f"tensors of SHA-256 {stored[:12]}...", "other bytes (damaged)")
            _optimizer_from_flat(optimizer, tensors, meta["optimizer"])
        except (SafetensorError, KeyError, TypeError, ValueError, RuntimeError) as e:
            if isinstance(e, ArtifactError):
                raise
            raise _refuse(meta_path, "the optimizer state of this model", f"{e!r}") from e
    return meta["state"]
