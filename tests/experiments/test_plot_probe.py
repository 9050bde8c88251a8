"""plot_probe.py turns run results into a table and a PNG, and refuses runs without a curve."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fake_run(folder: Path, model: str, curve: list[dict[str, float]]) -> Path:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(
        json.dumps({"model": model, "steps": 10, "wall_seconds": 5.0, "curve": curve})
    )
    return folder


def test_table_and_png(tmp_path: Path) -> None:
    point = {
        "wall_s": 1.0,
        "probe_accuracy": 0.75,
        "probe_chance": 0.4,
        "own_slot": 0.9,
        "same_slot": 0.8,
    }
    flam = fake_run(tmp_path / "a__flam__0__t", "flam", [point, {**point, "wall_s": 2.0}])
    lam = fake_run(tmp_path / "a__lam__0__t", "lam", [{**point, "probe_accuracy": 0.5}])
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "plot_probe.py"),
            str(flam),
            str(lam),
            "--out",
            str(tmp_path / "p.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "| 0.750 | 0.400 | 0.900 | 0.800 |" in out.stdout
    assert "| 0.500 | 0.400 |" in out.stdout
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_run_without_curve_is_refused(tmp_path: Path) -> None:
    wm = fake_run(tmp_path / "a__wm__0__t", "wm", [])
    out = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "plot_probe.py"), str(wm)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "has no probe curve" in out.stderr
