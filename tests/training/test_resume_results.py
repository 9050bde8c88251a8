"""A resumed stage-2 run's ``results.json`` holds the whole curve and the total wall time."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from latentrl.checkpoint import read_state
from latentrl.presets import get_preset
from latentrl.stages import train_model_stage, train_tokenizer_stage


def test_resumed_run_keeps_the_whole_curve_and_wall_time(tmp_path: Path) -> None:
    tiny = get_preset("tiny")
    tokenizer = train_tokenizer_stage(
        dataclasses.replace(tiny.data, episodes=10, steps=8),
        tiny.tokenizer,
        dataclasses.replace(tiny.tokenizer_train, steps=2, batch_size=8, media_every=0),
        root=tmp_path / "data",
        runs=tmp_path / "runs",
    )
    train_cfg = dataclasses.replace(
        tiny.train, steps=6, batch_size=4, eval_every=2, checkpoint_every=2, media_every=0
    )
    args = (tiny.model, train_cfg, dataclasses.replace(tiny.stage, probe_windows=8))
    run = train_model_stage(
        *args, tokenizer_run=tokenizer, runs=tmp_path / "runs", stop_after=4
    ).path
    first = read_state(run / "checkpoints" / "latest")
    assert first["step"] == 4 and [row["step"] for row in first["curve"]] == [2, 4]
    train_model_stage(*args, tokenizer_run=tokenizer, runs=tmp_path / "runs", resume=run)
    results = json.loads((run / "results.json").read_text())
    assert [row["step"] for row in results["curve"]] == [2, 4, 6]
    assert results["curve"][:2] == first["curve"]
    walls = [row["wall_s"] for row in results["curve"]]
    assert walls == sorted(walls)
    assert results["wall_seconds"] > first["wall_seconds"] > 0
    assert len(list((tmp_path / "runs").glob("*__flam__*"))) == 1
