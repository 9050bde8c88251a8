"""Throughput of the dataset path: encode, write and read back real episodes.

``bench_dataset_io`` rolls out a few episodes of an env in memory, then times each stage on
them: encoding (channel-first transpose + per-frame deflate, which generation workers do in
parallel), the HDF5 write (one process), and loading into a :class:`FrameCache` (threads).
Rates are in MB/s of *raw* frame bytes (uint8 ``h * w * c`` per frame), so they compare across
compression settings. The env must be registered (``import envs`` first for ours).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Any

import gymnasium as gym
import numpy as np

from latentrl.data.cache import FrameCache
from latentrl.data.episode import Compression, deflate_module
from latentrl.data.generate import GenerationSpec, PolicyFactory, UniformRandom, generate_episodes
from latentrl.data.minari_io import write_dataset


def _dir_bytes(path: str | os.PathLike[str]) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def bench_dataset_io(
    env_id: str = "MultiGrid-Empty-32x32-N4-v0",
    *,
    env_kwargs: dict[str, Any] | None = None,
    episodes: int = 64,
    steps: int = 64,
    policy: PolicyFactory | None = None,
    compression: Compression = "gzip",
    workers: int = 1,
    read_threads: int | None = None,
    root: str | os.PathLike[str] | None = None,
) -> dict[str, float]:
    """Time generating, encoding, writing and reading ``episodes`` episodes of ``env_id``.

    (Over 80 lines: a third is this docstring's list of returned figures; the body is one
    timed sequence, generate -> encode -> write -> read, whose order is the measurement.)

    Args:
        env_id: a registered Gymnasium id with uint8 ``(h, w, c)`` observations.
        env_kwargs: passed to ``gym.make``.
        episodes, steps: how much to generate (``steps`` caps each episode).
        policy: behaviour policy factory (default: uniform random actions).
        compression: ``"gzip"`` (the default storage) or ``"none"``.
        workers: generation processes (generation is timed but is not the point here).
        read_threads: threads for loading (default: one per core).
        root: where to write the scratch dataset (default: a temporary folder, removed after).

    Returns:
        ``raw_mb`` (frame bytes), ``stored_mb`` (dataset folder on disk), ``compression_ratio``,
        ``generate_s`` and ``generate_steps_per_s``, ``encode_s`` and ``encode_mb_s`` (one core),
        ``write_s`` and ``hdf5_write_mb_s`` (pre-encoded episodes into HDF5, metadata, rename),
        ``write_mb_s`` (encode + write on one core: the single-process dataset write rate),
        ``read_s`` and ``read_mb_s`` (dataset -> ``FrameCache``), ``deflate`` (1.0 if the
        faster ``isal`` codec was used, else 0.0).
    """
    spec = GenerationSpec(
        env_id,
        dict(env_kwargs or {}),
        policy=policy or UniformRandom(),
        max_steps=steps,
        compression=None,
    )
    t0 = time.perf_counter()
    raw = list(generate_episodes(spec, range(episodes), workers=workers))
    generate_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    encoded = [ep.encoded(compression) for ep in raw]
    encode_s = time.perf_counter() - t0

    env = gym.make(env_id, **(env_kwargs or {}))
    action_space = env.action_space
    env.close()
    scratch = tempfile.mkdtemp(prefix="latentrl-bench-", dir=root)
    try:
        t0 = time.perf_counter()
        written = write_dataset(
            "bench/io-v0",
            encoded,
            frame_shape=raw[0].frames.shape[1:],
            action_space=action_space,
            root=scratch,
            compression=compression,
        )
        write_s = time.perf_counter() - t0
        stored = _dir_bytes(written)

        t0 = time.perf_counter()
        cache = FrameCache.load("bench/io-v0", scratch, threads=read_threads)
        read_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    expected = np.concatenate([ep.frames for ep in raw])
    if not np.array_equal(cache.frames, expected):
        raise AssertionError("frames read back differ from the frames written")
    raw_mb = expected.nbytes / 1e6
    total_steps = sum(ep.num_steps for ep in raw)
    return {
        "raw_mb": raw_mb,
        "stored_mb": stored / 1e6,
        "compression_ratio": expected.nbytes / max(stored, 1),
        "generate_s": generate_s,
        "generate_steps_per_s": total_steps / generate_s,
        "encode_s": encode_s,
        "encode_mb_s": raw_mb / encode_s,
        "write_s": write_s,
        "hdf5_write_mb_s": raw_mb / write_s,
        "write_mb_s": raw_mb / (encode_s + write_s),
        "read_s": read_s,
        "read_mb_s": raw_mb / read_s,
        "deflate": float(deflate_module().__name__ != "zlib"),
    }
