"""Atomic, unpickle-free checkpoints: safetensors for tensors, JSON for everything else.

A checkpoint is a folder ``<name>/`` holding ``model.safetensors``, ``optimizer.safetensors``
(optional) and ``state.json``. It is written into a temporary sibling and renamed into place,
so a crash never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn


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
    save_file(state, str(tmp))
    os.replace(tmp, path)


def load_weights(model: nn.Module, path: Path) -> None:
    """Load safetensors weights into ``model`` (strict: every key must match)."""
    if not path.is_file():
        raise FileNotFoundError(f"no weights at {path}: train the model first or check the path")
    device = next(model.parameters()).device
    model.load_state_dict(load_file(str(path), device=str(device)))


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
            save_file(tensors, str(tmp / "optimizer.safetensors"))
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


def load_checkpoint(
    folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> dict[str, Any]:
    """Restore model (and optimizer) from a checkpoint folder; returns the training state."""
    meta_path = folder / "state.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {folder} (missing state.json): nothing to resume from"
        )
    meta = json.loads(meta_path.read_text())
    load_weights(model, folder / "model.safetensors")
    if optimizer is not None and "optimizer" in meta:
        tensors = load_file(str(folder / "optimizer.safetensors"))
        _optimizer_from_flat(optimizer, tensors, meta["optimizer"])
    return meta["state"]
