"""``torchrun --nproc-per-node 2 experiments/train_lam.py`` on a fresh machine (gloo, CPU).

Nothing exists yet: rank 0 alone generates the datasets, creates the tokenizer run and the
model run, and writes them; rank 1 waits and trains in step with it. What must be left is one
finished folder per stage (no second, half-made ``...-1`` folder from rank 1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_torchrun_two_processes_leave_one_finished_run_per_stage(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(ROOT / "experiments" / "train_lam.py"),
            "--preset",
            "tiny",
            "--model",
            "flam",
            "--data-episodes",
            "10",
            "--data-steps",
            "8",
            "--workers",
            "1",
            "--tokenizer-steps",
            "2",
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--eval-every",
            "2",
            "--checkpoint-every",
            "2",
            "--media-every",
            "0",
            "--probe-windows",
            "8",
            "--threads",
            "1",
            "--root",
            str(tmp_path / "data"),
            "--runs",
            str(runs),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    folders = sorted(p.name for p in runs.iterdir())
    assert len(folders) == 2, folders
    (tokenizer,) = runs.glob("*__tokenizer__*")
    (model,) = runs.glob("*__flam__*")
    for run in (tokenizer, model):
        assert (run / "results.json").is_file(), run
    assert (tokenizer / "codes" / "train.safetensors").is_file()
    assert (model / "model" / "model.safetensors").is_file()
    results = json.loads((model / "results.json").read_text())
    assert results["steps"] == 2
    assert Path(results["tokenizer_run"]).resolve() == tokenizer.resolve()
    state = json.loads((model / "checkpoints" / "latest" / "state.json").read_text())
    assert state["state"]["step"] == 2
    # The run summary is printed once (by rank 0), not once per process.
    assert out.stdout.count("\nrun: ") == 1, out.stdout[-2000:]
