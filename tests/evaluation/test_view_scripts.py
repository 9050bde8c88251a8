"""controllable_generation.py and plot_latent_actions.py end to end in subprocesses, on tiny run
folders trained in this process (a tokenizer run and FLAM / LAM runs of 3 steps)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
from PIL import Image

from tests.evaluation.tiny import tiny_runs

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def script(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "experiments" / name), *args, "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tiny_runs(tmp_path_factory.mktemp("view_scripts"), ("flam", "lam"))


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def test_controllable_generation_flam_controls_each_agent(runs: dict[str, Path]) -> None:
    run = runs["flam"]
    out = script("controllable_generation.py", str(run), "--steps", "6", cwd=runs["tmp"])
    assert out.returncode == 0, out.stderr[-3000:]
    folder = run / "control"
    for name in ("entities.gif", "entities.png", "codes.gif", "codes.png"):
        assert image_size(folder / name)[0] > 100, name
    for name in ("entities.mp4", "codes.mp4"):
        with av.open(str(folder / name)) as video:
            assert video.streams.video[0].width > 100, name
    result = json.loads((folder / "control.json").read_text())
    assert result["model"] == "flam" and result["steps"] == 6
    assert [e["agent"] for e in result["entities"]] == [0, 1, 2, 3]
    assert len(result["per_code"]) == 9  # tiny preset: action FSQ [3, 3]
    for row in result["entities"] + result["per_code"]:
        assert len(row["codes"]) == 6
        assert 0.0 <= row["changed_outside"] <= 1.0 and 0.0 <= row["mask_fraction"] <= 1.0
        # An entity's region can be empty in every case (a slot of this 3-step model that
        # wins no token): then, and only then, there is no inside figure (None, not NaN).
        if row["mask_fraction"] == 0.0:
            assert row["changed_inside"] is None
        else:
            assert 0.0 <= row["changed_inside"] <= 1.0


def test_controllable_generation_lam_with_given_codes(runs: dict[str, Path]) -> None:
    run, out_dir = runs["lam"], runs["tmp"] / "lam_control"
    args = ["--codes", "1", "2", "--steps", "2", "--out", str(out_dir)]
    out = script("controllable_generation.py", str(run), *args, cwd=runs["tmp"])
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((out_dir / "control.json").read_text())
    assert "one latent action per scene" in result["note"]
    (row,) = result["entities"]
    assert row["slots"] == [0] and row["codes"] == ["1", "2"]
    # The scene latent's "entity" is the whole frame: nothing lies outside it.
    assert row["changed_outside"] is None and row["mask_fraction"] == 1.0
    assert [r["codes"] for r in result["per_code"]] == [[str(c)] * 2 for c in range(9)]
    assert image_size(out_dir / "entities.png")[0] > 100


def test_plot_latent_actions_flam_with_umap(runs: dict[str, Path]) -> None:
    run = runs["flam"]
    out = script(
        "plot_latent_actions.py", str(run), "--windows", "8", "--max-points", "150",
        "--predictor", "logistic", cwd=runs["tmp"],
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    folder = run / "views"
    for name in ("umap.png", "attention.png", "attention.gif", "correspondence.png"):
        assert image_size(folder / name)[0] > 100, name
    views = json.loads((folder / "views.json").read_text())
    corr = views["correspondence"]
    assert len(corr["match_fraction_raw"]) == 12 and len(corr["match_fraction_raw"][0]) == 4
    for col in zip(*corr["match_fraction_raw"], strict=True):
        assert sum(col) == pytest.approx(1.0, abs=1e-3)
    importance = views["dci"]["aligned"]["importance"]
    assert len(importance) == 12 and len(importance[0]) == 4
    d = views["dci"]["aligned"]["disentanglement"]
    assert d is None or 0.0 <= d <= 1.0
    table = views["code_actions"]
    assert table["codes"] == 9 and 1 <= len(table["inferred"]) <= 9
    assert all(set(row) == {"counts", "meaning"} for row in table["inferred"].values())
    assert views["umap"]["points"] == 150


def test_plot_latent_actions_lam_without_umap(runs: dict[str, Path]) -> None:
    run = runs["lam"]
    args = ["--windows", "8", "--no-umap", "--predictor", "gbt"]
    out = script("plot_latent_actions.py", str(run), *args, cwd=runs["tmp"])
    assert out.returncode == 0, out.stderr[-3000:]
    views = json.loads((run / "views" / "views.json").read_text())
    assert views["factors"] == 1 and "correspondence" not in views
    assert len(views["dci"]["aligned"]["importance"]) == 1
    assert not (run / "views" / "attention.png").exists()
    assert (run / "views" / "correspondence.png").is_file()
