"""Run folders: ``runs/<env>__<model>__<seed>__<time>/`` with config, weights, logs, results.

Also the small pieces every experiment script shares: atomic JSON, a hardware line for
results tables, and finding the newest run trained on the same data.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from latentrl.data.recipes import DatasetSpec
from latentrl.errors import ArtifactError


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def read_json(path: Path) -> Any:
    """A JSON file of a run folder; damaged text is an :class:`ArtifactError` naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {path.parent} a latentrl run folder?")
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(
            f"{path}: expected JSON, found unreadable text ({e}). Fix: re-run the command that "
            f"wrote {path.parent}, or restore the file."
        ) from e


def hardware() -> str:
    """One line naming the device and the CPU it ran on."""
    cpu = f"{os.cpu_count()}-core {platform.machine()} CPU"
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} + {cpu}"
    return cpu


def env_tag(data: DatasetSpec) -> str:
    if data.env == "multigrid":
        return f"multigrid-{data.task}-{data.size}x{data.size}-N{data.agents}"
    return f"{data.env}-{data.task}-{data.frame_size}px"


def new_run_dir(runs: Path, data: DatasetSpec, model: str, seed: int) -> Path:
    """A fresh folder ``<runs>/<env>__<model>__<seed>__<time>`` (never an existing one)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = runs / f"{env_tag(data)}__{model}__{seed}__{stamp}"
    path, i = base, 1
    while path.exists():
        path, i = base.with_name(f"{base.name}-{i}"), i + 1
    path.mkdir(parents=True)
    return path


def latest_run(runs: Path, model: str, data: DatasetSpec) -> Path | None:
    """Newest finished run of ``model`` whose ``data.json`` matches ``data``, or None."""
    if not runs.is_dir():
        return None
    want = dataclasses.asdict(data)
    found = []
    for path in runs.glob(f"*__{model}__*"):
        meta = path / "data.json"
        if (path / "results.json").is_file() and meta.is_file():
            stored = json.loads(meta.read_text())
            stored["splits"] = tuple(stored.get("splits", ()))
            want["splits"] = tuple(want["splits"])
            if stored == want:
                found.append(path)
    return max(found, key=lambda p: p.stat().st_mtime) if found else None
