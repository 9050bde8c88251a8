"""experiments/generate_datasets.py end to end, in a subprocess, with tiny settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latentrl.data.cache import FrameCache
from latentrl.data.minari_io import list_datasets, load_minari_dataset, read_metadata

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "generate_datasets.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--no-progress", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )


def test_help() -> None:
    result = run("--help")
    assert result.returncode == 0
    for flag in ("--agents", "--splits", "--overwrite", "--workers", "--root", "--games"):
        assert flag in result.stdout


def test_multigrid_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    tiny = ("--agents", "1", "2", "--size", "8", "--episodes", "10", "--steps", "6")
    result = run(*tiny, "--root", str(root), "--workers", "2")
    assert result.returncode == 0, result.stderr
    ids = [
        "multigrid/empty-agent_1-size_8-v0",
        "multigrid/empty-agent_1-size_8-v1",
        "multigrid/empty-agent_1-size_8-v2",
        "multigrid/empty-agent_2-size_8-v0",
        "multigrid/empty-agent_2-size_8-v1",
        "multigrid/empty-agent_2-size_8-v2",
    ]
    assert list_datasets(root) == ids
    assert str(root) in result.stdout and "FrameCache.load" in result.stdout

    dataset = load_minari_dataset("multigrid/empty-agent_2-size_8-v0", root)
    assert dataset.total_episodes == 8  # 10 episodes at 80/10/10 -> 8/1/1
    episode = next(iter(dataset.iterate_episodes()))
    assert episode.observations.shape == (7, 3, 32, 32)
    assert episode.actions.shape == (6, 2)
    assert episode.infos["agent_pos"].shape == (7, 2, 2)
    meta = read_metadata("multigrid/empty-agent_2-size_8-v2", root)["latentrl"]
    assert meta["split"] == "test" and meta["seed_range"] == [9, 9]
    assert meta["env_kwargs"] == {"num_agents": 2, "size": 8, "tile_size": 4, "max_steps": 6}

    cache = FrameCache.load(ids[3:], root)
    assert cache.frames.shape == (10 * 7, 32, 32, 3) and cache.actions.shape == (70, 2)

    again = run(*tiny, "--root", str(root))
    assert again.returncode == 1
    assert "--overwrite" in again.stderr and ids[0] in again.stderr
    replaced = run(*tiny, "--root", str(root), "--overwrite", "--seed", "100")
    assert replaced.returncode == 0, replaced.stderr
    assert read_metadata(ids[0], root)["latentrl"]["seed_range"] == [100, 107]


def test_expert_on_goal_task(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    result = run(
        "--task", "goal", "--policy", "expert", "--agents", "2", "--size", "8",
        "--episodes", "2", "--steps", "20", "--splits", "1", "0", "0", "--root", str(root),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (dataset_id,) = list_datasets(root)
    assert dataset_id == "multigrid/goal-agent_2-expert-size_8-v0"
    dataset = load_minari_dataset(dataset_id, root)
    for episode in dataset.iterate_episodes():
        # The expert reaches every goal within 20 steps in an 8x8 room.
        assert episode.infos["success"][-1]
        np.testing.assert_array_equal(episode.infos["agent_pos"][-1], episode.infos["goal_pos"][-1])


def test_bad_arguments() -> None:
    result = run("--task", "empty", "--policy", "expert")
    assert result.returncode == 2 and "--task goal" in result.stderr


def test_procgen_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("procgen")
    root = tmp_path / "ds"
    result = run(
        "--env", "procgen", "--games", "coinrun", "--episodes", "10", "--steps", "20",
        "--root", str(root), "--workers", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert list_datasets(root) == ["procgen/coinrun-v0", "procgen/coinrun-v1", "procgen/coinrun-v2"]
    cache = FrameCache.load("procgen/coinrun-v0", root)
    assert cache.frame_shape == (64, 64, 3) and cache.actions.shape[1] == 1
