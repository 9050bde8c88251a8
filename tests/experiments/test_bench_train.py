"""bench_train.py measures every model on synthetic codes without any prior run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_prints_a_row_per_model_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    cmd = [sys.executable, str(ROOT / "experiments" / "bench_train.py"), "--steps", "2"]
    cmd += ["--warmup", "1", "--batch-size", "4", "--json", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == ["flam", "lam", "oclam", "wm"]
    assert all(r["steps_per_s"] > 0 and r["samples_per_s"] == 4 * r["steps_per_s"] for r in rows)
    assert all(len(r["runs"]) == 1 for r in rows)
    assert "flam" in done.stdout and "steps/s" in done.stdout
