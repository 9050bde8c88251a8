"""The small pieces every run folder and experiment script shares: atomic JSON (and the JSON
form of a config, as it is stored), a hardware line for results tables, and fresh run folders
``runs/<env>__<model>__<seed>__<time>/``.

What a run folder holds, how it loads and how a finished one is found is
:mod:`latentrl.artifacts`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from latentrl.data.recipes import DatasetSpec
from latentrl.errors import ArtifactError


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (temporary file in the same folder + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (:func:`write_text`), keys sorted, dataclasses and paths as JSON."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_jsonable))


def as_stored(data: Any) -> Any:
    """``data`` as :func:`write_json` stores it and :func:`read_json` returns it (dataclasses as
    dicts, tuples as lists, paths as strings): the form in which settings are compared."""
    return json.loads(json.dumps(data, default=_jsonable))


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


_SIGTERM_OWNER: int | None = None
"""The process that installed :func:`sigterm_as_exit`'s handler."""


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _SIGTERM_OWNER:
        # A forked child (e.g. a dataset-generation pool worker) inherits the handler. Its
        # SystemExit could be swallowed by the code it runs, and Pool.terminate would then wait
        # on it forever (a benchmark hung so once); a child just ends, as without the handler.
        os._exit(128 + signum)
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, a scheduler's stop, a timeout) raises
    ``SystemExit`` instead of ending the process at once, so that ``finally`` and ``except``
    clauses run: a command stopped that way removes its half-made output folder as a failed one
    does. Only in the main thread (elsewhere signals cannot be handled; the block then does
    nothing); the previous handler is restored on leaving."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _SIGTERM_OWNER
    _SIGTERM_OWNER = os.getpid()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def stop_workers_on_error(pool: ProcessPoolExecutor) -> Iterator[None]:
    """On any exception (a failed part, SIGTERM's ``SystemExit``, Ctrl-C) end the pool's workers
    (running and queued jobs) before the pool's own exit, which would otherwise wait for every
    running training or cloning to finish (minutes) before the error reaches the user. A
    stopped training keeps its run folder as of its last checkpoint."""
    try:
        yield
    except BaseException:
        # No public way to stop running workers before Python 3.14 (terminate_workers).
        workers = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.terminate()
        raise
