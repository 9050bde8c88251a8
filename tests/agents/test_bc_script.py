"""experiments/bc_true_actions.py runs end to end in a subprocess on tiny settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bc_true_actions_script_trains_saves_reloads_and_finetunes(tmp_path: Path) -> None:
    script = str(ROOT / "experiments" / "bc_true_actions.py")
    common = ["--env", "MultiGrid-Goal-8x8-N1-v0", "--eval-episodes", "3", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    train_args = ["--episodes", "20", "--steps", "5", "--save"]
    tune_args = ["--policy", str(tmp_path / "a" / "policy"), "--finetune-steps", "64"]
    tune_args += ["--ppo-envs", "2", "--ppo-rollout", "32"]
    first = subprocess.run(
        [sys.executable, script, *common, *train_args, "--out", str(tmp_path / "a")],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=ROOT,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert results["expert"]["success_rate"] == 1.0
    assert set(results["acting"]) == {"argmax", "sample", "escape"}
    assert results["bc"]["episodes"] == 3 and results["pairs"] > 0
    assert "| expert |" in (tmp_path / "a" / "results.md").read_text()
    again = subprocess.run(
        [sys.executable, script, *common, *tune_args, "--out", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=ROOT,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    tuned = json.loads((tmp_path / "b" / "results.json").read_text())
    # The reloaded policy acts exactly as the saved one did.
    assert tuned["acting"] == results["acting"]
    assert tuned["finetuned"]["ppo_steps"] == 64
