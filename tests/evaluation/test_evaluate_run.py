"""The evaluation library on tiny run folders trained in this process (the scripts' subprocess
tests are in tests/experiments/test_evaluation_scripts.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from latentrl.artifacts import ModelRun
from latentrl.evaluation import (
    EvalConfig,
    comparison_table,
    evaluate_run,
    write_comparison,
    write_run_outputs,
)
from tests.evaluation.tiny import tiny_runs

CONFIG = EvalConfig(windows=8, steps=10, seed=0, device="cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tokenizer run on 12 episodes of 12 steps and FLAM / WM runs of 3 steps on it."""
    return tiny_runs(tmp_path_factory.mktemp("evaluate_run"), ("flam", "wm"))


def test_training_logs_cheap_world_model_figures(runs: dict[str, Path]) -> None:
    for kind in ("flam", "wm"):
        figures = json.loads((runs[kind] / "results.json").read_text())["eval"]
        assert 0.0 < figures["psnr_1step"] <= 100.0, kind
        assert -100.0 <= figures["dpsnr"] <= 100.0, kind


def test_evaluation_writes_its_files_and_is_seeded(runs: dict[str, Path]) -> None:
    first = evaluate_run(runs["flam"], CONFIG, root=runs["data"], progress=False)
    again = evaluate_run(runs["flam"], CONFIG, root=runs["data"], progress=False)
    same = {"wall_seconds": 0.0}
    assert dataclasses.replace(first.scores, **same) == dataclasses.replace(again.scores, **same)
    scores = first.scores
    assert scores.windows == 3  # the one 13-frame test episode holds 3 windows of 11 frames
    assert len(scores.psnr_curve) == len(scores.dpsnr_curve) == len(scores.ssim_curve) == 10
    assert scores.code_agreement == 1.0
    assert first.example.truth.shape == (11, 32, 32, 3)
    assert first.example.predicted.shape == (10, 32, 32, 3)
    out = write_run_outputs(runs["flam"], first)
    for name in [
        "results.json",
        "table.md",
        "psnr_per_step.png",
        "rollout.gif",
        "rollout.mp4",
        "rollout.png",
    ]:
        assert (out / name).is_file(), name
    stored = json.loads((out / "results.json").read_text())
    assert stored["summary"]["psnr_1step"] == scores.psnr_1step
    assert "LPIPS weights not found" in stored["perceptual"]["lpips"]


def test_comparison_has_the_layout_of_table_1(runs: dict[str, Path]) -> None:
    evaluations = [
        evaluate_run(runs[kind], CONFIG, root=runs["data"], progress=False)
        for kind in ("flam", "wm")
    ]
    table = write_comparison(evaluations, runs["tmp"] / "comparison")
    lines = table.splitlines()
    assert lines[0] == "| multigrid-empty-8x8-N4 | WM | LAM | LAPO-style | OC+LAM | FLAM |"
    psnr_row = next(line for line in lines if line.startswith("| PSNR, 1 step"))
    cells = [c.strip() for c in psnr_row.strip("|").split("|")][1:]
    assert cells[1] == cells[2] == cells[3] == "-"  # no LAM, LAPO-style or OC+LAM run given
    assert float(cells[0]) == pytest.approx(evaluations[1].scores.psnr_1step, abs=0.01)
    assert float(cells[4]) == pytest.approx(evaluations[0].scores.psnr_1step, abs=0.01)
    assert "WM's ΔPSNR" in table
    assert comparison_table([e.scores for e in evaluations]) == table
    for name in ["comparison.md", "comparison.json", "psnr_per_step.png", "rollouts.gif"]:
        assert (runs["tmp"] / "comparison" / name).is_file(), name


def test_opening_a_model_run_names_the_problem(runs: dict[str, Path], tmp_path: Path) -> None:
    assert ModelRun.open(runs["flam"]).tokenizer_run.path == runs["tokenizer"].resolve()
    with pytest.raises(FileNotFoundError, match="no run folder at"):
        ModelRun.open(tmp_path / "nope")
    with pytest.raises(ValueError, match="not a latent-action-model run"):
        ModelRun.open(runs["tokenizer"])
    with pytest.raises(FileNotFoundError, match=r"has no config\.json"):
        ModelRun.open(tmp_path)
